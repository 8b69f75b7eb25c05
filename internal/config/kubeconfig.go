package config

// Kubeconfig is a kubeconfig with one cluster, one user that runs brokercred
// through an exec entry, and a context that joins them, made current. With
// ClusterInfo the cluster carries its name in the exec extension and the
// user, named just brokercred, is the same for every cluster, so kubeconfigs
// generated for several clusters merge into one user.
type Kubeconfig struct {
	Cluster
	Exec
}

// YAML renders the kubeconfig.
func (k Kubeconfig) YAML() ([]byte, error) {
	c, err := k.kubeconfig()
	if err != nil {
		return nil, err
	}
	return marshal(c)
}

// kubeconfig mirrors the parts of client-go's clientcmd/api/v1 Config it
// fills, without that type's always-present empty fields.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
}

type namedCluster struct {
	Name    string      `json:"name"`
	Cluster kubeCluster `json:"cluster"`
}

type kubeCluster struct {
	Server                   string           `json:"server"`
	CertificateAuthorityData []byte           `json:"certificate-authority-data,omitempty"`
	Extensions               []namedExtension `json:"extensions,omitempty"`
}

type namedExtension struct {
	Name      string            `json:"name"`
	Extension map[string]string `json:"extension"`
}

type namedUser struct {
	Name string   `json:"name"`
	User kubeUser `json:"user"`
}

type kubeUser struct {
	Exec kubeExec `json:"exec"`
}

type kubeExec struct {
	APIVersion         string   `json:"apiVersion"`
	Command            string   `json:"command"`
	Args               []string `json:"args,omitempty"`
	InstallHint        string   `json:"installHint,omitempty"`
	InteractiveMode    string   `json:"interactiveMode"`
	ProvideClusterInfo bool     `json:"provideClusterInfo,omitempty"`
}

type namedContext struct {
	Name    string      `json:"name"`
	Context kubeContext `json:"context"`
}

type kubeContext struct {
	Cluster string `json:"cluster"`
	User    string `json:"user"`
}

// kubeconfigInstallHint tells a kubectl user how to get the binary.
const kubeconfigInstallHint = "download it from https://github.com/brokercred/brokercred/releases, or regenerate this kubeconfig with --command set to where it is"

func (k Kubeconfig) kubeconfig() (kubeconfig, error) {
	r, err := resolve(k.Cluster, k.Exec)
	if err != nil {
		return kubeconfig{}, err
	}
	user := "brokercred-" + r.name
	cluster := kubeCluster{Server: r.server, CertificateAuthorityData: r.caPEM}
	if r.clusterConfig != nil {
		user = "brokercred"
		cluster.Extensions = []namedExtension{{Name: ExecExtension, Extension: r.clusterConfig}}
	}
	return kubeconfig{
		APIVersion: "v1",
		Kind:       "Config",
		Clusters:   []namedCluster{{Name: r.name, Cluster: cluster}},
		Users: []namedUser{{Name: user, User: kubeUser{Exec: kubeExec{
			APIVersion:         ExecAPIVersion,
			Command:            r.command,
			Args:               r.args,
			InstallHint:        installHint(r.command, kubeconfigInstallHint),
			InteractiveMode:    "Never",
			ProvideClusterInfo: r.clusterConfig != nil,
		}}}},
		Contexts:       []namedContext{{Name: r.name, Context: kubeContext{Cluster: r.name, User: user}}},
		CurrentContext: r.name,
	}, nil
}
