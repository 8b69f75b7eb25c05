package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// remote is a fake broker and the fake API server that trusts its tokens.
type remote struct {
	broker *brokertest.Server
	api    *brokertest.APIServer
	target string
	dir    string // holds the broker CA and the pod token
}

func newRemote(t *testing.T, opts brokertest.Options) *remote {
	t.Helper()
	r := &remote{broker: brokertest.NewServer(opts), target: "prod-east", dir: t.TempDir()}
	t.Cleanup(r.broker.Close)
	r.api = brokertest.NewAPIServer(r.broker, r.target)
	t.Cleanup(r.api.Close)
	token := brokertest.PodToken(podSubject, time.Now().Add(time.Hour))
	if err := os.WriteFile(filepath.Join(r.dir, "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// pluginArgs are the exec args a cluster's kubeconfig or Argo CD Secret
// would hold, with the cache in cacheDir.
func (r *remote) pluginArgs(cacheDir string) []string {
	return []string{"token",
		"--broker-url", r.broker.URL,
		"--ca-file", r.broker.CAFile(r.dir),
		"--token-file", filepath.Join(r.dir, "token"),
		"--target", r.target,
		"--cache-dir", cacheDir,
	}
}

// restConfig is a client-go config for the fake API server that gets its
// token by running brokercred.
func (r *remote) restConfig(apiVersion string, provideClusterInfo bool, args []string) *rest.Config {
	return &rest.Config{
		Host:            r.api.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: r.api.CAPEM()},
		ExecProvider: &clientcmdapi.ExecConfig{
			Command:            binary,
			Args:               args,
			APIVersion:         apiVersion,
			InteractiveMode:    clientcmdapi.NeverExecInteractiveMode,
			ProvideClusterInfo: provideClusterInfo,
		},
	}
}

func TestClientGoExecAuthenticator(t *testing.T) {
	for _, tc := range []struct {
		apiVersion         string
		provideClusterInfo bool
	}{
		{"client.authentication.k8s.io/v1", true},
		{"client.authentication.k8s.io/v1beta1", false},
	} {
		t.Run(tc.apiVersion, func(t *testing.T) {
			r := newRemote(t, brokertest.Options{})
			cacheDir := t.TempDir()
			cfg := r.restConfig(tc.apiVersion, tc.provideClusterInfo, r.pluginArgs(cacheDir))

			for call := 1; call <= 2; call++ {
				got, err := testkit.ServerVersion(cfg)
				if err != nil {
					t.Fatalf("call %d: ServerVersion: %v", call, err)
				}
				if got != brokertest.APIServerVersion {
					t.Errorf("call %d: server version %q, want %q", call, got, brokertest.APIServerVersion)
				}
				if n := r.api.Accepted(); n != int64(call) {
					t.Errorf("after call %d the API server accepted %d requests, want %d", call, n, call)
				}
			}
			if n := r.api.Rejected(); n != 0 {
				t.Errorf("API server rejected %d requests, want 0", n)
			}
			reqs := r.broker.Requests()
			if len(reqs) != 1 || reqs[0].Subject != podSubject || reqs[0].Target != r.target {
				t.Errorf("broker requests = %+v, want one for %s at %s", reqs, podSubject, r.target)
			}
			if entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.json")); len(entries) != 1 {
				t.Errorf("cache holds %d entries, want 1", len(entries))
			}
		})
	}
}

func TestClientGoExecAuthenticatorRefused(t *testing.T) {
	r := newRemote(t, brokertest.Options{Allow: []string{"system:serviceaccount:argocd:someone-else"}})
	cfg := r.restConfig("client.authentication.k8s.io/v1", false, r.pluginArgs(t.TempDir()))

	_, err := testkit.ServerVersion(cfg)
	if err == nil {
		t.Fatal("ServerVersion succeeded with a broker that refuses the subject")
	}
	for _, want := range []string{"getting credentials", "exec: executable " + binary + " failed with exit code 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
	if n := r.api.Accepted(); n != 0 {
		t.Errorf("API server accepted %d requests, want 0", n)
	}
	if n := len(r.broker.Requests()); n != 1 {
		t.Errorf("broker got %d requests, want 1", n)
	}
}

// kubeconfig is a kubeconfig for the fake API server whose user runs
// brokercred with args. Strings are JSON-quoted, which YAML reads as
// double-quoted scalars.
func (r *remote) kubeconfig(args []string) string {
	q := quoteYAML
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\n")
	b.WriteString("clusters:\n- name: remote\n  cluster:\n")
	b.WriteString("    server: " + q(r.api.URL) + "\n")
	b.WriteString("    certificate-authority-data: " + q(r.api.CAData()) + "\n")
	b.WriteString("users:\n- name: argocd\n  user:\n    exec:\n")
	b.WriteString("      apiVersion: client.authentication.k8s.io/v1\n")
	b.WriteString("      command: " + q(binary) + "\n")
	b.WriteString("      interactiveMode: Never\n")
	b.WriteString("      args:\n")
	for _, a := range args {
		b.WriteString("      - " + q(a) + "\n")
	}
	b.WriteString("contexts:\n- name: remote\n  context:\n    cluster: remote\n    user: argocd\n")
	b.WriteString("current-context: remote\n")
	return b.String()
}

func TestKubectl(t *testing.T) {
	bins := testkit.Kubectls()
	if len(bins) == 0 {
		t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
	}
	names := testkit.SortedNames(bins)
	r := newRemote(t, brokertest.Options{})
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			config := filepath.Join(dir, "kubeconfig")
			if err := os.WriteFile(config, []byte(r.kubeconfig(r.pluginArgs(filepath.Join(dir, "cache")))), 0o600); err != nil {
				t.Fatal(err)
			}
			accepted, requests := r.api.Accepted(), len(r.broker.Requests())

			stdout, stderr, err := runKubectl(t, bins[name], "--kubeconfig", config, "get", "--raw", "/version")
			if err != nil {
				t.Fatalf("%s get --raw /version: %v\nstderr:\n%s", name, err, stderr)
			}
			if !strings.Contains(stdout, brokertest.APIServerVersion) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, brokertest.APIServerVersion)
			}
			if r.api.Accepted() <= accepted {
				t.Errorf("API server accepted no new request")
			}
			if n := len(r.broker.Requests()) - requests; n != 1 {
				t.Errorf("broker got %d new requests, want 1 (an empty cache, then the cache)", n)
			}
		})
	}
}

// runKubectl runs kubectl with its own HOME, so it writes nothing to the
// real ~/.kube, and without KUBECONFIG.
func runKubectl(t *testing.T, path string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	env := []string{"HOME=" + t.TempDir()}
	for _, kv := range childEnv(t) {
		if name, _, _ := strings.Cut(kv, "="); name != "HOME" && name != "KUBECONFIG" {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", path, err)
	}
	return out.String(), errOut.String(), err
}

// quoteYAML quotes s as JSON, which YAML reads as a double-quoted scalar.
func quoteYAML(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
