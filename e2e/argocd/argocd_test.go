package argocd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// processTimeout bounds each brokercred run.
const processTimeout = 5 * time.Minute

const podSubject = "system:serviceaccount:argocd:argocd-application-controller"

// fleet is testkit's fleet of fake clusters, plus the cache dir a pod
// would mount.
type fleet struct {
	*testkit.Fleet
	cacheDir string
}

func newFleet(t *testing.T, names ...string) *fleet {
	t.Helper()
	f := &fleet{Fleet: testkit.NewFleet(t, filepath.Join("..", ".."), podSubject, names...)}
	f.cacheDir = filepath.Join(f.Dir, "cache")
	return f
}

// clusterSecret runs `brokercred config argocd-cluster` for the named
// cluster with the broker flags a pod needs, plus extra flags.
func (f *fleet) clusterSecret(t *testing.T, name string, extra ...string) []byte {
	t.Helper()
	args := append([]string{"config", "argocd-cluster",
		"--name", name,
		"--server", f.APIs[name].URL,
		"--server-ca-file", f.APIs[name].CAFile(t.TempDir()),
		"--command", f.Bin,
		"--broker-url", f.Broker.URL,
		"--ca-file", f.Broker.CAFile(f.Dir),
		"--token-file", f.TokenFile,
		"--cache-dir", f.cacheDir,
	}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("brokercred config argocd-cluster: %v\nstderr: %s", err, stderr.String())
	}
	return stdout.Bytes()
}

// storedSecret parses a generated Secret and moves stringData into data,
// as the API server does before Argo CD ever reads it.
func storedSecret(t *testing.T, manifest []byte) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(manifest, &s); err != nil {
		t.Fatalf("generated Secret does not parse as a core/v1 Secret: %v", err)
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
	return &s
}

// secretToCluster is Argo CD v3.3's util/db.SecretToCluster for the keys a
// generated Secret has. util/db itself does not build from the module proxy
// (its util/kube needs the gitops-engine inside the argo-cd repository), so
// the conversion is repeated here over Argo CD's own v1alpha1 types.
func secretToCluster(s *corev1.Secret) (*appv1.Cluster, error) {
	var cfg appv1.ClusterConfig
	if len(s.Data["config"]) > 0 {
		if err := json.Unmarshal(s.Data["config"], &cfg); err != nil {
			return nil, fmt.Errorf("failed to unmarshal cluster config: %w", err)
		}
	}
	var namespaces []string
	for _, ns := range strings.Split(string(s.Data["namespaces"]), ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	labels := maps.Clone(s.Labels)
	delete(labels, "argocd.argoproj.io/secret-type")
	return &appv1.Cluster{
		ID:               string(s.UID),
		Server:           strings.TrimRight(string(s.Data["server"]), "/"),
		Name:             string(s.Data["name"]),
		Namespaces:       namespaces,
		ClusterResources: string(s.Data["clusterResources"]) == "true",
		Config:           cfg,
		Project:          string(s.Data["project"]),
		Labels:           labels,
	}, nil
}

// TestArgoCDClusterSecret reads the generated Secret the way Argo CD's
// cluster cache does (util/db.SecretToCluster), builds the client config with
// Cluster.RawRestConfig and Cluster.RESTConfig, and reaches the API stub.
func TestArgoCDClusterSecret(t *testing.T) {
	f := newFleet(t, "dev-cluster")
	s := storedSecret(t, f.clusterSecret(t, "dev-cluster", "--label", "example.com/clustername=dev-cluster", "--project", "platform"))
	if s.Labels["argocd.argoproj.io/secret-type"] != "cluster" {
		t.Errorf("Secret labels = %v, want argocd.argoproj.io/secret-type: cluster", s.Labels)
	}
	cluster, err := secretToCluster(s)
	if err != nil {
		t.Fatalf("secretToCluster: %v", err)
	}
	if cluster.Name != "dev-cluster" || cluster.Server != f.APIs["dev-cluster"].URL || cluster.Project != "platform" ||
		cluster.Labels["example.com/clustername"] != "dev-cluster" {
		t.Errorf("cluster = name %q server %q project %q labels %v, want dev-cluster at the API stub in project platform with the clustername label",
			cluster.Name, cluster.Server, cluster.Project, cluster.Labels)
	}
	epc := cluster.Config.ExecProviderConfig
	if epc == nil || epc.Command != f.Bin || epc.APIVersion != "client.authentication.k8s.io/v1" {
		t.Fatalf("execProviderConfig = %+v, want the brokercred binary with apiVersion client.authentication.k8s.io/v1", epc)
	}
	for name, build := range map[string]func() (*rest.Config, error){
		"RawRestConfig": cluster.RawRestConfig,
		"RESTConfig":    cluster.RESTConfig,
	} {
		cfg, err := build()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := testkit.ServerVersion(cfg)
		if err != nil {
			t.Fatalf("%s: ServerVersion: %v", name, err)
		}
		if got != brokertest.APIServerVersion {
			t.Errorf("%s: server version %q, want %q", name, got, brokertest.APIServerVersion)
		}
	}
	if got := f.AskedTargets(); got != "dev-cluster" {
		t.Errorf("broker was asked for %q, want dev-cluster once (the second config's call from the cache)", got)
	}
	if api := f.APIs["dev-cluster"]; api.Rejected() != 0 {
		t.Errorf("API server rejected %d requests, want 0", api.Rejected())
	}
}

// TestArgoCDBefore35IgnoresClusterInfo shows what an Argo CD older than
// v3.5.0 does with a --cluster-info Secret: it drops provideClusterInfo and
// config, so brokercred learns no target and fails before any broker call.
func TestArgoCDBefore35IgnoresClusterInfo(t *testing.T) {
	f := newFleet(t, "east")
	cluster, err := secretToCluster(storedSecret(t, f.clusterSecret(t, "east", "--cluster-info")))
	if err != nil {
		t.Fatalf("secretToCluster: %v", err)
	}
	cfg, err := cluster.RawRestConfig()
	if err != nil {
		t.Fatalf("RawRestConfig: %v", err)
	}
	if cfg.ExecProvider == nil || cfg.ExecProvider.ProvideClusterInfo || cfg.ExecProvider.Config != nil {
		t.Fatalf("exec provider = %+v, want one without cluster info (this Argo CD predates v3.5.0)", cfg.ExecProvider)
	}
	if _, err := testkit.ServerVersion(cfg); err == nil {
		t.Fatal("ServerVersion succeeded without a target")
	}
	if got := f.AskedTargets(); got != "" {
		t.Errorf("broker was asked for %q, want no request", got)
	}
}

// execProviderConfig35 is Argo CD v3.5's v1alpha1.ExecProviderConfig, field
// for field: v3.5 cannot be built from the module proxy (its gitops-engine
// is a replacement inside its repository), so its two new fields are
// mirrored here.
type execProviderConfig35 struct {
	Command            string                `json:"command,omitempty"`
	Args               []string              `json:"args,omitempty"`
	Env                map[string]string     `json:"env,omitempty"`
	APIVersion         string                `json:"apiVersion,omitempty"`
	InstallHint        string                `json:"installHint,omitempty"`
	ProvideClusterInfo bool                  `json:"provideClusterInfo,omitempty"`
	Config             *runtime.RawExtension `json:"config,omitempty"`
}

// restConfig35 is what v3.5's Cluster.RESTConfig builds for an
// execProviderConfig (pkg/apis/application/v1alpha1/types.go, v3.5.7).
func restConfig35(server string, tls appv1.TLSClientConfig, e execProviderConfig35) *rest.Config {
	var env []api.ExecEnvVar
	for k, v := range e.Env {
		env = append(env, api.ExecEnvVar{Name: k, Value: v})
	}
	execConfig := &api.ExecConfig{
		APIVersion:         e.APIVersion,
		Command:            e.Command,
		Args:               e.Args,
		Env:                env,
		InstallHint:        e.InstallHint,
		ProvideClusterInfo: e.ProvideClusterInfo,
		InteractiveMode:    api.NeverExecInteractiveMode,
	}
	if e.Config != nil && len(e.Config.Raw) > 0 {
		execConfig.Config = &runtime.Unknown{Raw: e.Config.Raw, ContentType: runtime.ContentTypeJSON}
	}
	return &rest.Config{
		Host:            server,
		TLSClientConfig: rest.TLSClientConfig{Insecure: tls.Insecure, ServerName: tls.ServerName, CAData: tls.CAData},
		ExecProvider:    execConfig,
	}
}

// TestArgoCD35ClusterInfo feeds two --cluster-info Secrets, east and west,
// through v3.5's ExecProviderConfig and RESTConfig: their execProviderConfig
// differs only in config, and each cluster gets a token for its own name.
func TestArgoCD35ClusterInfo(t *testing.T) {
	f := newFleet(t, "east", "west")
	configs := map[string]*rest.Config{}
	var shared []execProviderConfig35
	for _, name := range []string{"east", "west"} {
		s := storedSecret(t, f.clusterSecret(t, name, "--cluster-info"))
		var cc struct {
			ExecProviderConfig execProviderConfig35  `json:"execProviderConfig"`
			TLSClientConfig    appv1.TLSClientConfig `json:"tlsClientConfig"`
		}
		if err := json.Unmarshal(s.Data["config"], &cc); err != nil {
			t.Fatalf("%s: config: %v", name, err)
		}
		e := cc.ExecProviderConfig
		if got := clusterConfig(t, e.Config); !e.ProvideClusterInfo || !reflect.DeepEqual(got, map[string]string{"clusterName": name}) {
			t.Fatalf("%s: execProviderConfig has provideClusterInfo %v and config %v, want true and {clusterName: %s}", name, e.ProvideClusterInfo, got, name)
		}
		configs[name] = restConfig35(string(s.Data["server"]), cc.TLSClientConfig, e)
		e.Config = nil
		shared = append(shared, e)
	}
	if !reflect.DeepEqual(shared[0], shared[1]) {
		t.Errorf("execProviderConfig differs between clusters beyond config:\n%+v\n%+v", shared[0], shared[1])
	}
	for _, name := range []string{"east", "west", "east"} {
		if _, err := testkit.ServerVersion(configs[name]); err != nil {
			t.Fatalf("%s: ServerVersion: %v", name, err)
		}
	}
	if got := f.AskedTargets(); got != "east,west" {
		t.Errorf("broker was asked for %q, want east,west (the second east call from the cache)", got)
	}
	for name, api := range f.APIs {
		if api.Accepted() == 0 || api.Rejected() != 0 {
			t.Errorf("API server %s accepted %d and rejected %d requests, want some and none", name, api.Accepted(), api.Rejected())
		}
	}
}

// clusterConfig decodes an execProviderConfig's config; nil when absent.
func clusterConfig(t *testing.T, raw *runtime.RawExtension) map[string]string {
	t.Helper()
	if raw == nil {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw.Raw, &m); err != nil {
		t.Fatalf("execProviderConfig.config is not a string map: %v", err)
	}
	return m
}
