package config

import (
	"fmt"
	"path"
	"strings"
)

const (
	// ToolsVolume is the emptyDir the initContainer installs the binary into.
	ToolsVolume = "custom-tools"
	// CacheVolume is the emptyDir that holds the token cache, shared by the
	// processes of one container.
	CacheVolume = "brokercred-cache"
	// DefaultCacheDir is where CacheVolume is mounted when --cache-dir is not set.
	DefaultCacheDir = "/var/cache/brokercred"
	// cacheDirEnv is the environment variable that points brokercred at the cache.
	cacheDirEnv = "BROKERCRED_CACHE_DIR"
)

// HelmValues are values for the argo-cd Helm chart that install brokercred
// into the application controller and the server, the two components that
// talk to clusters: an initContainer copies the binary from Image into a
// shared emptyDir, and a second emptyDir holds the token cache.
type HelmValues struct {
	Exec
	Image string `name:"image" default:"ghcr.io/brokercred/brokercred:latest" placeholder:"IMAGE" help:"Image of the initContainer that installs brokercred."`
}

// helmValues holds the chart keys HelmValues sets.
type helmValues struct {
	Controller component `json:"controller"`
	Server     component `json:"server"`
}

// component is the per-component part of the argo-cd chart's values.
type component struct {
	InitContainers []container   `json:"initContainers"`
	Volumes        []volume      `json:"volumes"`
	VolumeMounts   []volumeMount `json:"volumeMounts"`
	Env            []envVar      `json:"env"`
}

type container struct {
	Name            string          `json:"name"`
	Image           string          `json:"image"`
	Command         []string        `json:"command"`
	VolumeMounts    []volumeMount   `json:"volumeMounts"`
	SecurityContext securityContext `json:"securityContext"`
}

// securityContext lets the initContainer run under the restricted Pod
// Security Standard; the image's user is numeric, so runAsNonRoot holds.
type securityContext struct {
	RunAsNonRoot             bool           `json:"runAsNonRoot"`
	AllowPrivilegeEscalation bool           `json:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   bool           `json:"readOnlyRootFilesystem"`
	Capabilities             capabilities   `json:"capabilities"`
	SeccompProfile           seccompProfile `json:"seccompProfile"`
}

type capabilities struct {
	Drop []string `json:"drop"`
}

type seccompProfile struct {
	Type string `json:"type"`
}

type volume struct {
	Name     string   `json:"name"`
	EmptyDir struct{} `json:"emptyDir"`
}

type volumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

type envVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// YAML renders the values.
func (h HelmValues) YAML() ([]byte, error) {
	v, err := h.values()
	if err != nil {
		return nil, err
	}
	return marshal(v)
}

func (h HelmValues) values() (helmValues, error) {
	if !path.IsAbs(h.Command) || path.Base(h.Command) != "brokercred" {
		return helmValues{}, fmt.Errorf("command %q is not an absolute path ending in /brokercred, the name install writes; set --command like %s", h.Command, DefaultCommand)
	}
	if h.Image == "" {
		return helmValues{}, fmt.Errorf("no image; set --image like %s", DefaultImage)
	}
	if err := checkNoInsecureHTTP(h.Options); err != nil {
		return helmValues{}, err
	}
	c := h.component()
	return helmValues{Controller: c, Server: c}, nil
}

// component wires one Argo CD component: the install initContainer, both
// volumes, their mounts, and the broker settings as environment variables.
func (h HelmValues) component() component {
	toolsDir := path.Dir(h.Command)
	cacheDir := h.CacheDir
	if cacheDir == "" {
		cacheDir = DefaultCacheDir
	}
	tools := volumeMount{Name: ToolsVolume, MountPath: toolsDir}
	return component{
		InitContainers: []container{{
			Name:         "install-brokercred",
			Image:        h.Image,
			Command:      []string{"/brokercred", "install", toolsDir},
			VolumeMounts: []volumeMount{tools},
			SecurityContext: securityContext{
				RunAsNonRoot:   true,
				Capabilities:   capabilities{Drop: []string{"ALL"}},
				SeccompProfile: seccompProfile{Type: "RuntimeDefault"},
				// AllowPrivilegeEscalation false is the zero value, rendered on purpose.
				ReadOnlyRootFilesystem: true,
			},
		}},
		Volumes:      []volume{{Name: ToolsVolume}, {Name: CacheVolume}},
		VolumeMounts: []volumeMount{tools, {Name: CacheVolume, MountPath: cacheDir}},
		Env:          h.env(cacheDir),
	}
}

// env is the cache dir and every broker flag that differs from its default,
// as BROKERCRED_* variables: settings shared by every cluster Secret.
func (h HelmValues) env(cacheDir string) []envVar {
	env := []envVar{{Name: cacheDirEnv, Value: cacheDir}}
	for _, f := range changedFlags(h.Options) {
		name, _, _ := strings.Cut(f.env, ",") // kong allows several; the first is canonical
		if name == "" || name == cacheDirEnv {
			continue
		}
		env = append(env, envVar{Name: name, Value: formatValue(f.value)})
	}
	return env
}
