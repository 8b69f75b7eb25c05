package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

func TestClientGoExecAuthenticator(t *testing.T) {
	for _, tc := range []struct {
		apiVersion         string
		provideClusterInfo bool
	}{
		{"client.authentication.k8s.io/v1", true},
		{"client.authentication.k8s.io/v1beta1", false},
	} {
		t.Run(tc.apiVersion, func(t *testing.T) {
			f := newFixture(t, withClusters("prod-east"))
			api := f.APIs[f.target]
			cfg := f.restConfig(f.target, tc.apiVersion)
			cfg.ExecProvider.ProvideClusterInfo = tc.provideClusterInfo

			for call := 1; call <= 2; call++ {
				got, err := testkit.ServerVersion(cfg)
				if err != nil {
					t.Fatalf("call %d: ServerVersion: %v", call, err)
				}
				if got != brokertest.APIServerVersion {
					t.Errorf("call %d: server version %q, want %q", call, got, brokertest.APIServerVersion)
				}
				if n := api.Accepted(); n != int64(call) {
					t.Errorf("after call %d the API server accepted %d requests, want %d", call, n, call)
				}
			}
			if n := api.Rejected(); n != 0 {
				t.Errorf("API server rejected %d requests, want 0", n)
			}
			reqs := f.Broker.Requests()
			if len(reqs) != 1 || reqs[0].Subject != podSubject || reqs[0].Target != f.target {
				t.Errorf("broker requests = %+v, want one for %s at %s", reqs, podSubject, f.target)
			}
			if entries, _ := testkit.CacheEntries(f.cacheDir); len(entries) != 1 {
				t.Errorf("cache holds %d entries, want 1", len(entries))
			}
		})
	}
}

func TestClientGoExecAuthenticatorRefused(t *testing.T) {
	f := newFixture(t, withBroker(brokertest.Options{Allow: []string{"system:serviceaccount:argocd:someone-else"}}), withClusters("prod-east"))
	cfg := f.restConfig(f.target, "client.authentication.k8s.io/v1")

	_, err := testkit.ServerVersion(cfg)
	if err == nil {
		t.Fatal("ServerVersion succeeded with a broker that refuses the subject")
	}
	for _, want := range []string{"getting credentials", "exec: executable " + binary + " failed with exit code 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
	if n := f.APIs[f.target].Accepted(); n != 0 {
		t.Errorf("API server accepted %d requests, want 0", n)
	}
	if n := len(f.Broker.Requests()); n != 1 {
		t.Errorf("broker got %d requests, want 1", n)
	}
}

func TestKubectl(t *testing.T) {
	bins := testkit.Kubectls()
	if len(bins) == 0 {
		t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
	}
	names := testkit.SortedNames(bins)
	f := newFixture(t, withClusters("prod-east"))
	api := f.APIs[f.target]
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			f.cacheDir = filepath.Join(t.TempDir(), "cache")
			config := f.kubeconfig(t, f.target, false)
			accepted, requests := api.Accepted(), len(f.Broker.Requests())

			stdout, stderr, err := runKubectl(t, bins[name], nil, "--kubeconfig", config, "get", "--raw", "/version")
			if err != nil {
				t.Fatalf("%s get --raw /version: %v\nstderr:\n%s", name, err, redact(stderr))
			}
			if !strings.Contains(stdout, brokertest.APIServerVersion) {
				t.Errorf("stdout = %q, want it to contain %q", redact(stdout), brokertest.APIServerVersion)
			}
			if api.Accepted() <= accepted {
				t.Errorf("API server accepted no new request")
			}
			if n := len(f.Broker.Requests()) - requests; n != 1 {
				t.Errorf("broker got %d new requests, want 1 (an empty cache, then the cache)", n)
			}
		})
	}
}

// runKubectl runs kubectl with its own HOME, so it writes nothing to the
// real ~/.kube, and with extraEnv in place of any KUBECONFIG of this process.
func runKubectl(t *testing.T, path string, extraEnv []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	env := []string{"HOME=" + t.TempDir()}
	for _, kv := range childEnv(t) {
		if name, _, _ := strings.Cut(kv, "="); name != "HOME" && name != "KUBECONFIG" {
			env = append(env, kv)
		}
	}
	r, err := execute(append(env, extraEnv...), nil, append([]string{path}, args...))
	if err != nil {
		t.Fatalf("run %s: %v", path, err)
	}
	if r.code != 0 {
		err = fmt.Errorf("exit code %d", r.code)
	}
	return r.stdout, r.stderr, err
}
