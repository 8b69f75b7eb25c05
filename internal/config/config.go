// Package config renders the files that wire brokercred into its callers: an
// Argo CD cluster Secret, a kubeconfig, values for the argo-cd Helm chart
// that install the binary next to Argo CD, and a ClusterProfile access
// provider file. It only prints; nothing is applied.
//
// Every output is built from typed Go values and marshalled with
// sigs.k8s.io/yaml, never from text templates. The exec arguments come from
// credential.Options through ExecArgs, so a flag added to the token command
// reaches the generated configs without a change here.
package config

import (
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/brokercred/brokercred/internal/credential"
)

const (
	// DefaultCommand is where the initContainer installs the binary: the
	// shared emptyDir mounted at /custom-tools.
	DefaultCommand = "/custom-tools/brokercred"
	// ExecAPIVersion is the ExecCredential version the generated configs ask for.
	ExecAPIVersion = "client.authentication.k8s.io/v1"
	// ImageRepository holds the release images the initContainer runs, one
	// tag per release version.
	ImageRepository = "ghcr.io/brokercred/brokercred"
	// ExecExtension is the kubeconfig cluster extension that client-go hands
	// an exec plugin as spec.cluster.config when provideClusterInfo is set.
	ExecExtension = "client.authentication.k8s.io/exec"
)

// Exec says how a client runs brokercred: the installed binary and the flags
// of its token command. The zero Options give no arguments at all.
type Exec struct {
	Command string `name:"command" default:"/custom-tools/brokercred" placeholder:"PATH" help:"Where the brokercred binary is installed, as the client sees it."`
	credential.Options
}

// Cluster is the remote cluster a generated config points at.
type Cluster struct {
	Name         string `name:"name" placeholder:"NAME" help:"Name of the remote cluster in Argo CD or the kubeconfig; also the broker target when --target is not set."`
	Server       string `name:"server" placeholder:"URL" help:"https URL of the remote cluster's API server."`
	ServerCAFile string `name:"server-ca-file" placeholder:"FILE" help:"PEM CA bundle of the remote API server (default: the client's system roots)."`
	// ClusterInfo names the target through client-go's cluster info
	// (provideClusterInfo and the cluster's exec config) instead of
	// --target. False writes --target into the exec args.
	ClusterInfo bool `name:"cluster-info" help:"Pass the cluster's name to brokercred as provideClusterInfo with config {clusterName: NAME} instead of --target, so every cluster shares one exec config (Argo CD v3.5.0 or later)."`
}

// remote is a Cluster checked and read: the exec settings filled in and the
// CA loaded.
type remote struct {
	name, server string
	caPEM        []byte // nil when no CA file was given
	command      string
	args         []string
	// clusterConfig is the exec config that names the cluster, such as
	// {"clusterName": "dev"}; nil unless Cluster.ClusterInfo is set.
	clusterConfig map[string]string
}

// resolve checks c and e and reads the CA file. An empty Target becomes the
// cluster's name, or, with ClusterInfo, the cluster's exec config.
func resolve(c Cluster, e Exec) (remote, error) {
	if c.Name == "" {
		return remote{}, errors.New("no cluster name; set --name")
	}
	if err := checkServer(c.Server); err != nil {
		return remote{}, err
	}
	if err := checkExec(e); err != nil {
		return remote{}, err
	}
	r := remote{name: c.Name, server: c.Server, command: e.Command}
	o := e.Options
	switch {
	case c.ClusterInfo && o.Target != "":
		return remote{}, fmt.Errorf("--cluster-info passes the cluster's name as config.%s, so --target %q would be ignored or refused; leave --target out", o.ClusterNameKey(), o.Target)
	case c.ClusterInfo:
		r.clusterConfig = map[string]string{o.ClusterNameKey(): c.Name}
	case o.Target == "":
		o.Target = c.Name
	}
	r.args = ExecArgs(o)
	if c.ServerCAFile != "" {
		ca, err := readCA(c.ServerCAFile)
		if err != nil {
			return remote{}, err
		}
		r.caPEM = ca
	}
	return r, nil
}

func checkServer(server string) error {
	if server == "" {
		return errors.New("no API server URL; set --server to the remote cluster's https URL")
	}
	return checkServerURL(server, "API server URL", "set --server like https://dev-cluster.example.com:6443")
}

// checkServerURL refuses a server URL that a generated config must not
// hold: one that is not https, or that carries user info, a query or a
// fragment, any of which can hold a credential. what names the URL in the
// error and fix says how to correct it. The URL is quoted only when it
// holds none of those parts.
func checkServerURL(server, what, fix string) error {
	u, err := url.Parse(server)
	switch {
	case err != nil:
		return fmt.Errorf("%s does not parse as a URL; %s", what, fix)
	case u.User != nil:
		return fmt.Errorf("%s holds user info (USER:PASSWORD@), which would put a credential in the config; %s", what, fix)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%s has a query or fragment, which can hold a credential; %s", what, fix)
	case u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("%s %q is not an https URL; %s", what, server, fix)
	}
	return nil
}

// checkExec refuses an Exec without a command or a broker URL, or one that
// allows a plain-http broker.
func checkExec(e Exec) error {
	if e.Command == "" {
		return errors.New("no command; set --command to the path of the installed brokercred binary")
	}
	if e.BrokerURL == "" {
		return errors.New("no broker URL; set --broker-url to the broker's https endpoint (Vault: its address)")
	}
	return checkNoInsecureHTTP(e.Options)
}

// checkNoInsecureHTTP refuses --insecure-http: it exists for loopback tests,
// and a generated config is meant for clusters, where a plain-http broker
// would carry the pod token in clear text.
func checkNoInsecureHTTP(o credential.Options) error {
	if o.InsecureHTTP {
		return errors.New("--insecure-http is for loopback tests only, and a generated config would send the pod token over plain http; leave --insecure-http out and give an https --broker-url")
	}
	return nil
}

// checkNoTarget refuses --target in output shared by several clusters.
// shared says what is shared ("a provider file serves every
// ClusterProfile"); fix says how each cluster names its own target instead.
func checkNoTarget(o credential.Options, shared, fix string) error {
	if o.Target == "" {
		return nil
	}
	return fmt.Errorf("%s, so --target %q would send them all to one cluster; leave --target out and %s", shared, o.Target, fix)
}

// readCA reads a PEM bundle and refuses a file without a certificate in it.
func readCA(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read API server CA: %w; set --server-ca-file to the remote cluster's CA in PEM", err)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("API server CA %s holds no PEM certificate; pass the CA in PEM (a kubeconfig's certificate-authority-data, base64-decoded)", path)
		}
		if block.Type == "CERTIFICATE" {
			return data, nil
		}
	}
}

// marshal renders v as YAML.
func marshal(v any) ([]byte, error) {
	out, err := yaml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("render YAML: %w", err)
	}
	return out, nil
}

// installHint is what client-go prints when the command is missing.
func installHint(command, remedy string) string {
	return fmt.Sprintf("brokercred is not installed at %s: %s", command, strings.TrimSpace(remedy))
}
