package main

import (
	"os"
	"path/filepath"
	"sort"
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

// clusterInfoKubeconfig has one context per cluster, each cluster carrying
// its name in the client.authentication.k8s.io/exec extension, and one user
// shared by all of them that runs brokercred with provideClusterInfo and
// the fixture's flags.
func (f *fixture) clusterInfoKubeconfig() string {
	q := quoteYAML
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nclusters:\n")
	names := make([]string, 0, len(f.APIs))
	for name := range f.APIs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		api := f.APIs[name]
		b.WriteString("- name: " + name + "\n  cluster:\n")
		b.WriteString("    server: " + q(api.URL) + "\n")
		b.WriteString("    certificate-authority-data: " + q(api.CAData()) + "\n")
		b.WriteString("    extensions:\n    - name: client.authentication.k8s.io/exec\n")
		b.WriteString("      extension:\n        clusterName: " + name + "\n")
	}
	b.WriteString("users:\n- name: brokercred\n  user:\n    exec:\n")
	b.WriteString("      apiVersion: client.authentication.k8s.io/v1\n")
	b.WriteString("      command: " + q(f.Bin) + "\n")
	b.WriteString("      interactiveMode: Never\n      provideClusterInfo: true\n      args:\n")
	for _, a := range append([]string{"token"}, f.flags()...) {
		b.WriteString("      - " + q(a) + "\n")
	}
	b.WriteString("contexts:\n")
	for _, name := range names {
		b.WriteString("- name: " + name + "\n  context:\n    cluster: " + name + "\n    user: brokercred\n")
	}
	return b.String()
}

func TestKubectlClusterInfoSharedUser(t *testing.T) {
	bins := testkit.Kubectls()
	if len(bins) == 0 {
		t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
	}
	for _, name := range testkit.SortedNames(bins) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, withClusters("east", "west"))
			f.target = ""
			config := filepath.Join(t.TempDir(), "kubeconfig")
			if err := os.WriteFile(config, []byte(f.clusterInfoKubeconfig()), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, context := range []string{"east", "west", "east", "west"} {
				stdout, stderr, err := runKubectl(t, bins[name], "--kubeconfig", config, "--context", context, "get", "--raw", "/version")
				if err != nil {
					t.Fatalf("--context %s get --raw /version: %v\nstderr:\n%s", context, err, stderr)
				}
				if !strings.Contains(stdout, brokertest.APIServerVersion) {
					t.Errorf("--context %s: stdout = %q, want it to contain %q", context, stdout, brokertest.APIServerVersion)
				}
			}
			if got := f.AskedTargets(); got != "east,west" {
				t.Errorf("broker was asked for %s, want east,west (one each; repeats from the cache)", got)
			}
			if entries, _ := filepath.Glob(filepath.Join(f.cacheDir, "*.json")); len(entries) != 2 {
				t.Errorf("cache holds %d entries, want 2 (one per cluster)", len(entries))
			}
		})
	}
}
