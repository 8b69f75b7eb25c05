package config

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// SecretTypeLabel marks a Secret as an Argo CD cluster.
const SecretTypeLabel = "argocd.argoproj.io/secret-type"

// ArgoCDCluster is an Argo CD cluster Secret whose execProviderConfig runs
// brokercred for the cluster's token. With FromSecret it is every cluster
// Secret read from there, converted (see Render).
type ArgoCDCluster struct {
	Cluster
	Exec

	SecretName string   `name:"secret-name" placeholder:"NAME" help:"Name of the Secret (default: --name)."`
	Namespace  string   `name:"namespace" default:"argocd" placeholder:"NS" help:"Namespace of the Secret: where Argo CD runs (with --from-secret, of each Secret that names none)."`
	Labels     []string `name:"label" sep:"none" placeholder:"KEY=VALUE" help:"Extra label on the Secret, for an ApplicationSet cluster generator's selector (repeatable)."`
	Project    string   `name:"project" placeholder:"PROJECT" help:"Argo CD project the cluster belongs to (default: none, any project)."`
	Namespaces []string `name:"namespaces" placeholder:"NS" help:"Namespaces Argo CD may manage in the cluster, comma separated (default: all)."`
	// FromSecret is the file of cluster Secrets to convert, "-" for stdin;
	// empty means generate one Secret from the flags.
	FromSecret string `name:"from-secret" placeholder:"FILE" help:"Convert the cluster Secrets in FILE (- for stdin; a Secret or a List, as kubectl get secret -o yaml or -o json prints them): keep their name, server, project, namespaces and TLS settings, drop every credential, add brokercred's execProviderConfig. --name and --server then come from each Secret."`
}

// YAML renders the Secret.
func (a ArgoCDCluster) YAML() ([]byte, error) {
	s, err := a.secret()
	if err != nil {
		return nil, err
	}
	return marshal(s)
}

// secret is the part of a core/v1 Secret that the cluster Secret uses.
type secret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Type       string            `json:"type"`
	StringData map[string]string `json:"stringData"`
}

type objectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// clusterConfig is the JSON in the Secret's config key, as Argo CD's
// v1alpha1.ClusterConfig reads it.
type clusterConfig struct {
	ExecProviderConfig execConfig      `json:"execProviderConfig"`
	TLSClientConfig    tlsClientConfig `json:"tlsClientConfig"`
}

// execConfig is Argo CD's ExecProviderConfig; ProvideClusterInfo and
// Config are read by Argo CD v3.5.0 and later and ignored before.
type execConfig struct {
	Command            string            `json:"command"`
	Args               []string          `json:"args,omitempty"`
	APIVersion         string            `json:"apiVersion"`
	InstallHint        string            `json:"installHint,omitempty"`
	ProvideClusterInfo bool              `json:"provideClusterInfo,omitempty"`
	Config             map[string]string `json:"config,omitempty"`
}

// tlsClientConfig is the part of Argo CD's TLSClientConfig that holds no
// credential: never certData or keyData.
type tlsClientConfig struct {
	Insecure   bool   `json:"insecure"`
	ServerName string `json:"serverName,omitempty"`
	CAData     []byte `json:"caData,omitempty"` // base64 of the PEM, by encoding/json
}

// argoCDInstallHint tells how the binary gets into Argo CD's containers.
const argoCDInstallHint = "add the brokercred initContainer and the custom-tools volume to the Argo CD application controller and server (brokercred config helm-values)"

func (a ArgoCDCluster) secret() (secret, error) {
	r, err := resolve(a.Cluster, a.Exec)
	if err != nil {
		return secret{}, err
	}
	name := a.SecretName
	if name == "" {
		name = a.Name
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return secret{}, fmt.Errorf("%q is not a valid Secret name (%s); set --secret-name", name, errs[0])
	}
	labels, err := a.labels()
	if err != nil {
		return secret{}, err
	}
	cfg, err := r.config(tlsClientConfig{CAData: r.caPEM})
	if err != nil {
		return secret{}, err
	}
	data := map[string]string{"name": r.name, "server": r.server, "config": cfg}
	if a.Project != "" {
		data["project"] = a.Project
	}
	if ns := joinNonEmpty(a.Namespaces); ns != "" {
		data["namespaces"] = ns
	}
	return secret{
		APIVersion: "v1",
		Kind:       "Secret",
		Metadata:   objectMeta{Name: name, Namespace: a.Namespace, Labels: labels},
		Type:       "Opaque",
		StringData: data,
	}, nil
}

// config renders the Secret's config key: the execProviderConfig that runs
// brokercred for r, and tls.
func (r remote) config(tls tlsClientConfig) (string, error) {
	cfg, err := json.MarshalIndent(clusterConfig{
		ExecProviderConfig: execConfig{
			Command:            r.command,
			Args:               r.args,
			APIVersion:         ExecAPIVersion,
			InstallHint:        installHint(r.command, argoCDInstallHint),
			ProvideClusterInfo: r.clusterConfig != nil,
			Config:             r.clusterConfig,
		},
		TLSClientConfig: tls,
	}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("render cluster config: %w", err)
	}
	return string(cfg) + "\n", nil
}

// labels parses the --label flags and adds the cluster secret-type label.
func (a ArgoCDCluster) labels() (map[string]string, error) {
	labels := map[string]string{SecretTypeLabel: "cluster"}
	for _, kv := range a.Labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q is not KEY=VALUE; pass --label example.com/clustername=dev", kv)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("label key %q is invalid (%s); pass --label example.com/clustername=dev", k, errs[0])
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("label value %q is invalid (%s); pass --label KEY=VALUE with a value of at most 63 letters, digits, '-', '_' or '.'", v, errs[0])
		}
		if k == SecretTypeLabel {
			return nil, fmt.Errorf("label %s is set by brokercred to cluster; leave it out", SecretTypeLabel)
		}
		labels[k] = v
	}
	return labels, nil
}

// joinNonEmpty joins the trimmed, non-empty items with commas.
func joinNonEmpty(items []string) string {
	var kept []string
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			kept = append(kept, s)
		}
	}
	return strings.Join(kept, ",")
}
