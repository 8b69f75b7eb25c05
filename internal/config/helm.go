package config

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// ToolsVolume is the emptyDir the initContainer installs the binary into.
	ToolsVolume = "custom-tools"
	// CacheVolume is the emptyDir that holds the token cache, shared by the
	// processes of one container.
	CacheVolume = "brokercred-cache"
	// CAVolume is the ConfigMap volume that holds the broker's CA bundle
	// when --ca-configmap is set.
	CAVolume = "brokercred-broker-ca"
	// DefaultCacheDir is where CacheVolume is mounted when --cache-dir is not set.
	DefaultCacheDir = "/var/cache/brokercred"
	// DefaultCAKey is the ConfigMap key --ca-configmap mounts when it names
	// none: the key of kube-root-ca.crt and of most CA bundle ConfigMaps.
	DefaultCAKey = "ca.crt"
	// cacheSizeLimit bounds the memory-backed cache. An entry is a few KiB,
	// so this holds thousands; the volume counts against the container's
	// memory limit.
	cacheSizeLimit = "8Mi"
)

// HelmValues are values for the argo-cd Helm chart that install brokercred
// into the application controller and the server, the two components that
// talk to clusters: an initContainer copies the binary from Image into a
// shared emptyDir, mounted read-only where brokercred runs, a memory-backed
// emptyDir holds the token cache, and with CAConfigMap a ConfigMap provides
// the broker's CA at --ca-file.
type HelmValues struct {
	Exec
	Image       string `name:"image" placeholder:"IMAGE" help:"Image of the initContainer that installs brokercred, by tag or by digest (REPO@sha256:…) (default: ghcr.io/brokercred/brokercred:VERSION, the release of this binary)."`
	CAConfigMap string `name:"ca-configmap" placeholder:"NAME[:KEY]" help:"ConfigMap key holding the broker's CA bundle, mounted read-only at --ca-file in the controller and the server (KEY default: ca.crt)."`
	// Version is the brokercred release whose image the initContainer runs
	// when Image is empty. "" or "dev", a development build, has no release
	// image, so Image must be set then.
	Version string `kong:"-"`
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

// volume is a pod volume: an emptyDir or a ConfigMap.
type volume struct {
	Name      string           `json:"name"`
	EmptyDir  *emptyDirSource  `json:"emptyDir,omitempty"`
	ConfigMap *configMapSource `json:"configMap,omitempty"`
}

// emptyDirSource is an emptyDir; the zero value is one on the node's disk
// without a size limit.
type emptyDirSource struct {
	Medium    string `json:"medium,omitempty"`
	SizeLimit string `json:"sizeLimit,omitempty"`
}

type configMapSource struct {
	Name string `json:"name"`
}

type volumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	SubPath   string `json:"subPath,omitempty"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
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
	if !path.IsAbs(h.Command) || path.Clean(h.Command) != h.Command || path.Base(h.Command) != "brokercred" {
		return helmValues{}, fmt.Errorf("command %q is not a clean absolute path ending in /brokercred, the name install writes; set --command like %s", h.Command, DefaultCommand)
	}
	if err := h.checkMounts(); err != nil {
		return helmValues{}, err
	}
	if err := checkNoInsecureHTTP(h.Options); err != nil {
		return helmValues{}, err
	}
	if err := checkNoTarget(h.Options, "Helm values serve every cluster Secret", "let each cluster Secret name its target (brokercred config argocd-cluster --name NAME)"); err != nil {
		return helmValues{}, err
	}
	image, err := h.image()
	if err != nil {
		return helmValues{}, err
	}
	ca, err := h.caMount()
	if err != nil {
		return helmValues{}, err
	}
	c := h.component(image, ca)
	return helmValues{Controller: c, Server: c}, nil
}

// isImageTag reports whether version can be an image tag: a letter, digit
// or underscore, then at most 127 of those, dots and dashes. (A function,
// not a regular expression: a package-level one would be compiled on every
// start of brokercred, credential calls included.)
func isImageTag(version string) bool {
	return version != "" && len(version) <= 128 && version[0] != '.' && version[0] != '-' && onlyNameChars(version)
}

// onlyNameChars reports whether s holds only ASCII letters, digits, dots,
// underscores and dashes (true for "").
func onlyNameChars(s string) bool {
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// image is Image, or the release image of Version.
func (h HelmValues) image() (string, error) {
	if h.Image != "" {
		return h.Image, nil
	}
	if h.Version == "" || h.Version == "dev" || !isImageTag(h.Version) {
		return "", fmt.Errorf("this brokercred is a development build (version %q) and has no release image; set --image to a brokercred image you built or a release, like %s:1.0.0 or %s@sha256:…", h.Version, ImageRepository, ImageRepository)
	}
	return ImageRepository + ":" + h.Version, nil
}

// caSource is the ConfigMap key mounted at the broker CA file.
type caSource struct {
	configMap, key, file string
}

// caMount reads CAConfigMap; nil when it is empty.
func (h HelmValues) caMount() (*caSource, error) {
	if h.CAConfigMap == "" {
		return nil, nil
	}
	name, key, _ := strings.Cut(h.CAConfigMap, ":")
	if key == "" {
		key = DefaultCAKey
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, fmt.Errorf("--ca-configmap %q does not name a ConfigMap (%s); pass --ca-configmap NAME or NAME:KEY, like broker-ca:%s", h.CAConfigMap, errs[0], DefaultCAKey)
	}
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
		return nil, fmt.Errorf("--ca-configmap key %q is not a ConfigMap key (%s); pass --ca-configmap NAME:KEY, like broker-ca:%s", key, errs[0], DefaultCAKey)
	}
	file := h.CAFile
	switch {
	case file == "":
		return nil, errors.New("--ca-configmap mounts the broker's CA at --ca-file, which is not set; set --ca-file to where the CA should appear, like /etc/brokercred/ca.crt")
	case !path.IsAbs(file) || path.Clean(file) != file:
		return nil, fmt.Errorf("--ca-file %q is not a clean absolute path, so the CA cannot be mounted there; set --ca-file like /etc/brokercred/ca.crt", file)
	}
	for _, dir := range []string{path.Dir(h.Command), h.cacheDir()} {
		if inDir(file, dir) {
			return nil, fmt.Errorf("--ca-file %s lies in %s, which holds brokercred's own emptyDir; set --ca-file outside it, like /etc/brokercred/ca.crt", file, dir)
		}
	}
	return &caSource{configMap: name, key: key, file: file}, nil
}

// neededDirs are directories that an emptyDir mounted at them, or above
// them, would hide from the container: those of any Linux image, and the
// Argo CD image's own (its binaries in /usr/local/bin, its home in
// /home/argocd, its TLS and SSH settings under /app/config).
var neededDirs = []string{
	"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/etc/ssl/certs",
	"/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/usr/share",
	"/usr/local/bin", "/usr/local/sbin", "/usr/local/lib", "/home/argocd", "/app/config", "/root",
	"/tmp", "/var/tmp", "/var/lib", "/var/cache", "/var/log", "/opt", "/srv", "/mnt", "/media", "/boot",
}

// filledDirs are directories the kernel or the kubelet fills: nothing of
// brokercred's is mounted in them. The ServiceAccount token lives in
// /var/run/secrets (/var/run is /run).
var filledDirs = []string{"/proc", "/sys", "/dev", "/run", "/var/run"}

// checkMounts refuses a tools directory (that of Command) or a cache
// directory that is not a directory of its own (see checkOwnDir), and the
// two at one place or one inside the other, where their emptyDirs would
// clash.
func (h HelmValues) checkMounts() error {
	tools, cache := path.Dir(h.Command), h.cacheDir()
	if err := h.checkOwnDir(tools, "--command "+h.Command, "set --command to a directory of its own, like "+DefaultCommand); err != nil {
		return err
	}
	if !path.IsAbs(cache) || path.Clean(cache) != cache {
		return fmt.Errorf("--cache-dir %q is not a clean absolute path; set --cache-dir to a directory of its own, like %s", cache, DefaultCacheDir)
	}
	if err := h.checkOwnDir(cache, "--cache-dir "+cache, "set --cache-dir to a directory of its own, like "+DefaultCacheDir); err != nil {
		return err
	}
	if inDir(cache, tools) || inDir(tools, cache) {
		return fmt.Errorf("--cache-dir %s and the tools directory %s of --command are one or nest, so their emptyDirs would clash; set --cache-dir apart from it, like %s", cache, tools, DefaultCacheDir)
	}
	return nil
}

// checkOwnDir refuses dir, a clean absolute path, as the mountPath of an
// emptyDir unless it is a directory of its own: not /, hiding none of
// neededDirs nor the directory of --token-file, and in none of filledDirs.
// flag says which setting put the emptyDir there, fix how to move it.
func (h HelmValues) checkOwnDir(dir, flag, fix string) error {
	if dir == "/" {
		return fmt.Errorf("%s puts an emptyDir at /, over the container's whole filesystem; %s", flag, fix)
	}
	for _, filled := range filledDirs {
		if inDir(dir, filled) {
			return fmt.Errorf("%s puts an emptyDir at %s, inside %s, which the kubelet or the kernel fills (the ServiceAccount token is in /var/run/secrets); %s", flag, dir, filled, fix)
		}
	}
	needed := neededDirs
	if path.IsAbs(h.TokenFile) {
		needed = append(slices.Clip(needed), path.Dir(path.Clean(h.TokenFile)))
	}
	for _, n := range needed {
		if inDir(n, dir) {
			return fmt.Errorf("%s puts an emptyDir at %s, which would hide %s that the container needs; %s", flag, dir, n, fix)
		}
	}
	return nil
}

// inDir reports whether the clean absolute path p is dir or lies inside it.
func inDir(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// cacheDir is where CacheVolume is mounted.
func (h HelmValues) cacheDir() string {
	if h.CacheDir == "" {
		return DefaultCacheDir
	}
	return h.CacheDir
}

// component wires one Argo CD component: the install initContainer, the
// volumes, their mounts (read-only where brokercred runs), and the broker
// settings as environment variables. ca may be nil.
func (h HelmValues) component(image string, ca *caSource) component {
	toolsDir := path.Dir(h.Command)
	cacheDir := h.cacheDir()
	c := component{
		InitContainers: []container{{
			Name:         "install-brokercred",
			Image:        image,
			Command:      []string{"/brokercred", "install", toolsDir},
			VolumeMounts: []volumeMount{{Name: ToolsVolume, MountPath: toolsDir}},
			SecurityContext: securityContext{
				RunAsNonRoot:   true,
				Capabilities:   capabilities{Drop: []string{"ALL"}},
				SeccompProfile: seccompProfile{Type: "RuntimeDefault"},
				// AllowPrivilegeEscalation false is the zero value, rendered on purpose.
				ReadOnlyRootFilesystem: true,
			},
		}},
		Volumes: []volume{
			{Name: ToolsVolume, EmptyDir: &emptyDirSource{}},
			{Name: CacheVolume, EmptyDir: &emptyDirSource{Medium: "Memory", SizeLimit: cacheSizeLimit}},
		},
		VolumeMounts: []volumeMount{
			{Name: ToolsVolume, MountPath: toolsDir, ReadOnly: true},
			{Name: CacheVolume, MountPath: cacheDir},
		},
		Env: h.env(cacheDir),
	}
	if ca != nil {
		c.Volumes = append(c.Volumes, volume{Name: CAVolume, ConfigMap: &configMapSource{Name: ca.configMap}})
		c.VolumeMounts = append(c.VolumeMounts, volumeMount{Name: CAVolume, MountPath: ca.file, SubPath: ca.key, ReadOnly: true})
	}
	return c
}

// env is every broker flag that differs from its default, the cache dir
// always among them, as the variables credential.Options' env tags name, in
// the order it declares them: settings shared by every cluster Secret.
func (h HelmValues) env(cacheDir string) []envVar {
	o := h.Options
	o.CacheDir = cacheDir
	var env []envVar
	for _, f := range changedFlags(o) {
		name, _, _ := strings.Cut(f.env, ",") // kong allows several; the first is canonical
		if name == "" {
			continue
		}
		env = append(env, envVar{Name: name, Value: formatValue(f.value)})
	}
	return env
}
