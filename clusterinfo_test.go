package main

import (
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// TestClientGoClusterInfoArgoCD35 feeds client-go the rest.Config that Argo
// CD v3.5's Cluster.RESTConfig() builds from a cluster Secret whose
// execProviderConfig has provideClusterInfo and config {"clusterName": …}:
// the same exec config for both clusters, which has no --target, apart from
// config.
func TestClientGoClusterInfoArgoCD35(t *testing.T) {
	f := newFixture(t, withClusters("east", "west"))
	f.target = ""
	for _, name := range []string{"east", "west", "east"} {
		cfg := f.restConfig(name, "client.authentication.k8s.io/v1")
		cfg.ExecProvider.ProvideClusterInfo = true
		cfg.ExecProvider.Config = &runtime.Unknown{Raw: []byte(`{"clusterName":"` + name + `"}`), ContentType: runtime.ContentTypeJSON}
		if _, err := testkit.ServerVersion(cfg); err != nil {
			t.Fatalf("cluster %s: ServerVersion: %v", name, err)
		}
	}
	for name, api := range f.APIs {
		if api.Accepted() == 0 || api.Rejected() != 0 {
			t.Errorf("API server %s accepted %d and rejected %d requests, want some and none", name, api.Accepted(), api.Rejected())
		}
	}
	if got := f.AskedTargets(); got != "east,west" {
		t.Errorf("broker was asked for %s, want east,west (the second east call from the cache)", got)
	}
}

// TestKubectlClusterInfoSharedUser merges the --cluster-info kubeconfigs
// that brokercred generates for two clusters through KUBECONFIG, as a user
// would: one context per cluster, each cluster carrying its name in the
// client.authentication.k8s.io/exec extension, and one user shared by both
// that runs brokercred with provideClusterInfo and no --target.
func TestKubectlClusterInfoSharedUser(t *testing.T) {
	t.Parallel() // its own fixtures; the kubectl-bound tests overlap each other
	bins := testkit.Kubectls()
	if len(bins) == 0 {
		t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
	}
	for _, name := range testkit.SortedNames(bins) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, withClusters("east", "west"))
			f.target = ""
			merged := "KUBECONFIG=" + f.kubeconfig(t, "east", true) + string(os.PathListSeparator) + f.kubeconfig(t, "west", true)
			for _, context := range []string{"east", "west", "east", "west"} {
				r := runKubectl(t, bins[name], []string{merged}, "--context", context, "get", "--raw", "/version")
				if r.Code != 0 {
					t.Fatalf("--context %s get --raw /version: exit code %d\nstderr:\n%s", context, r.Code, redact(r.Stderr))
				}
				if !strings.Contains(r.Stdout, brokertest.APIServerVersion) {
					t.Errorf("--context %s: stdout = %q, want it to contain %q", context, redact(r.Stdout), brokertest.APIServerVersion)
				}
			}
			if got := f.AskedTargets(); got != "east,west" {
				t.Errorf("broker was asked for %s, want east,west (one each; repeats from the cache)", got)
			}
			if entries := cachedEntries(t, f.cacheDir); len(entries) != 2 {
				t.Errorf("cache holds %d entries, want 2 (one per cluster)", len(entries))
			}
			for name, api := range f.APIs {
				if api.Accepted() < 2 || api.Rejected() != 0 {
					t.Errorf("API server %s accepted %d and rejected %d requests, want at least 2 and none", name, api.Accepted(), api.Rejected())
				}
			}
		})
	}
}
