package argocd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/db"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	f := &fleet{Fleet: testkit.NewFleet(t, filepath.Join("..", ".."), "get-target-token", podSubject, names...)}
	f.cacheDir = filepath.Join(f.Dir, "cache")
	return f
}

// clusterSecret runs `brokercred config argocd-cluster` for the named
// cluster with the broker flags a pod needs, plus extra flags.
func (f *fleet) clusterSecret(t *testing.T, name string, extra ...string) []byte {
	t.Helper()
	args := append([]string{
		"--name", name,
		"--server", f.APIs[name].URL,
		"--server-ca-file", f.APIs[name].CAFile(t.TempDir()),
	}, extra...)
	stdout, stderr := f.argocdCluster(t, nil, args...)
	if stderr != "" {
		t.Errorf("brokercred config argocd-cluster wrote on stderr: %s", stderr)
	}
	return stdout
}

// argocdCluster runs `brokercred config argocd-cluster` with the broker
// flags a pod needs, plus args, reading stdin, and fails the test unless it
// succeeds.
func (f *fleet) argocdCluster(t *testing.T, stdin []byte, args ...string) (stdout []byte, stderr string) {
	t.Helper()
	args = append([]string{"config", "argocd-cluster",
		"--command", f.Bin,
		"--broker-url", f.Broker.URL,
		"--ca-file", f.Broker.CAFile(f.Dir),
		"--token-file", f.TokenFile,
		"--cache-dir", f.cacheDir,
	}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("brokercred config argocd-cluster: %v\nstderr: %s", err, errOut.String())
	}
	return out.Bytes(), errOut.String()
}

// storedSecret parses a generated Secret and moves stringData into data,
// as the API server does before Argo CD ever reads it.
func storedSecret(t *testing.T, manifest []byte) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(manifest, &s); err != nil {
		t.Fatalf("generated Secret does not parse as a core/v1 Secret: %v", err)
	}
	return stored(s)
}

// stored is s as the API server keeps it: stringData moved into data.
func stored(s corev1.Secret) *corev1.Secret {
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
	return &s
}

// secretToCluster is how Argo CD's cluster cache reads a cluster Secret:
// util/db.SecretToCluster itself.
func secretToCluster(s *corev1.Secret) (*appv1.Cluster, error) {
	return db.SecretToCluster(s)
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

// Credentials of the Secrets a conversion starts from: a long-lived
// ServiceAccount token, a basic-auth pair, a client certificate and key.
const (
	oldBearerToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvbGQtc2EifQ.FAKEoldSAtoken-q7Wm2Xv9Lk4Rb"
	oldPassword    = "FAKEpassword-Ht3nQ8zVc1"
	oldCertData    = "FAKEclientCert-Ry6uP2wXe9"
	oldKeyData     = "FAKEclientKey-Js4kN7dMf2"
)

// oldClusterSecret is a cluster Secret as kubectl get prints it before the
// conversion: Argo CD's own ClusterConfig with a bearer token, basic auth
// and a client certificate, the last-applied annotation that repeats the
// token, and server-managed metadata.
func (f *fleet) oldClusterSecret(t *testing.T, name string) corev1.Secret {
	t.Helper()
	ca, err := os.ReadFile(f.APIs[name].CAFile(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	config, err := json.Marshal(appv1.ClusterConfig{
		BearerToken: oldBearerToken,
		Username:    "admin",
		Password:    oldPassword,
		TLSClientConfig: appv1.TLSClientConfig{
			CAData: ca, CertData: []byte(oldCertData), KeyData: []byte(oldKeyData),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "argocd", ResourceVersion: "4711", UID: "0b6e6f2c-8c43-4d6f-9d0e-6a3c2f1e5b7a",
			Labels: map[string]string{"argocd.argoproj.io/secret-type": "cluster", "example.com/clustername": name},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"config":"{\"bearerToken\":\"` + oldBearerToken + `\"}"}}`,
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"name": []byte(name), "server": []byte(f.APIs[name].URL), "project": []byte("platform"), "config": config},
	}
}

// secretList is a kubectl List of Secrets.
type secretList struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   metav1.ListMeta `json:"metadata"`
	Items      []corev1.Secret `json:"items"`
}

// TestArgoCDConvertedSecrets converts two cluster Secrets that hold
// long-lived credentials, as kubectl get -o yaml prints them, through
// --from-secret on stdin; Argo CD's code path reads each converted Secret,
// which holds no credential any more, and reaches its API server with a
// token from the broker.
func TestArgoCDConvertedSecrets(t *testing.T) {
	f := newFleet(t, "east", "west")
	in, err := yaml.Marshal(secretList{APIVersion: "v1", Kind: "List",
		Items: []corev1.Secret{f.oldClusterSecret(t, "east"), f.oldClusterSecret(t, "west")}})
	if err != nil {
		t.Fatal(err)
	}
	out, stderr := f.argocdCluster(t, in, "--from-secret", "-")
	if stderr != "" {
		t.Errorf("conversion reported on stderr: %s", stderr)
	}
	for _, cred := range []string{oldBearerToken, oldPassword, oldCertData, oldKeyData} {
		for _, form := range []string{cred, base64.StdEncoding.EncodeToString([]byte(cred))} {
			if strings.Contains(string(out), form) || strings.Contains(stderr, form) {
				t.Errorf("conversion output holds an old credential")
			}
		}
	}
	var converted secretList
	if err := yaml.UnmarshalStrict(out, &converted); err != nil {
		t.Fatalf("converted output does not parse as a List of core/v1 Secrets: %v", err)
	}
	if converted.Kind != "List" || len(converted.Items) != 2 {
		t.Fatalf("converted output is a %s of %d items, want a List of 2", converted.Kind, len(converted.Items))
	}
	for _, s := range converted.Items {
		name := s.Name
		if s.ResourceVersion != "" || s.UID != "" || len(s.Annotations) != 0 || s.Labels["example.com/clustername"] != name {
			t.Errorf("%s: metadata %+v, want the labels kept and no resourceVersion, uid or last-applied annotation", name, s.ObjectMeta)
		}
		cluster, err := secretToCluster(stored(s))
		if err != nil {
			t.Fatalf("%s: secretToCluster: %v", name, err)
		}
		cfg := cluster.Config
		if cluster.Name != name || cluster.Server != f.APIs[name].URL || cluster.Project != "platform" {
			t.Errorf("%s: cluster name %q server %q project %q, want them kept", name, cluster.Name, cluster.Server, cluster.Project)
		}
		if cfg.BearerToken != "" || cfg.Username != "" || cfg.Password != "" || cfg.CertData != nil || cfg.KeyData != nil || len(cfg.CAData) == 0 {
			t.Errorf("%s: cluster config keeps a credential or lost its CA", name)
		}
		if cfg.ExecProviderConfig == nil || cfg.ExecProviderConfig.Command != f.Bin {
			t.Fatalf("%s: execProviderConfig = %+v, want the brokercred binary", name, cfg.ExecProviderConfig)
		}
		for what, build := range map[string]func() (*rest.Config, error){
			"RawRestConfig": cluster.RawRestConfig,
			"RESTConfig":    cluster.RESTConfig,
		} {
			rc, err := build()
			if err != nil {
				t.Fatalf("%s: %s: %v", name, what, err)
			}
			if rc.BearerToken != "" || rc.Username != "" || rc.Password != "" {
				t.Errorf("%s: %s carries a static credential", name, what)
			}
			got, err := testkit.ServerVersion(rc)
			if err != nil {
				t.Fatalf("%s: %s: ServerVersion: %v", name, what, err)
			}
			if got != brokertest.APIServerVersion {
				t.Errorf("%s: %s: server version %q, want %q", name, what, got, brokertest.APIServerVersion)
			}
		}
	}
	if got := f.AskedTargets(); got != "east,west" {
		t.Errorf("broker was asked for %q, want east,west once each (repeats from the cache)", got)
	}
	for name, api := range f.APIs {
		if api.Accepted() == 0 || api.Rejected() != 0 {
			t.Errorf("API server %s accepted %d and rejected %d requests, want some and none", name, api.Accepted(), api.Rejected())
		}
	}
}
