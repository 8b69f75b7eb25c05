package clusterprofile

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/cluster-inventory-api/pkg/access"
	"sigs.k8s.io/yaml"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/config"
	"github.com/brokercred/brokercred/internal/credential"
	"github.com/brokercred/brokercred/internal/testkit"
)

const podSubject = "system:serviceaccount:fleet:multicluster-controller"

// fleet is testkit's fleet of fake clusters, one per ClusterProfile.
type fleet struct{ *testkit.Fleet }

func newFleet(t *testing.T, names ...string) *fleet {
	t.Helper()
	return &fleet{testkit.NewFleet(t, filepath.Join("..", ".."), "get-target-token", podSubject, names...)}
}

// providerFile writes the provider file that `brokercred config
// clusterprofile-provider` prints for these broker settings.
func (f *fleet) providerFile(t *testing.T, allowed ...string) string {
	t.Helper()
	out, err := config.ClusterProfileProvider{
		ProviderName: config.DefaultProviderName,
		Exec: config.Exec{Command: f.Bin, Options: credential.Options{
			BrokerURL: f.Broker.URL, CAFile: f.Broker.CAFile(f.Dir), TokenFile: f.TokenFile,
			CacheDir: filepath.Join(f.Dir, "cache"), AllowedTargets: allowed,
		}},
	}.JSON()
	if err != nil {
		t.Fatalf("ClusterProfileProvider.JSON: %v", err)
	}
	path := filepath.Join(t.TempDir(), "clusterprofile-provider-file.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// profile is the ClusterProfile a cluster manager would publish for the
// named cluster: brokercred as its access provider, the cluster's name in
// the client.authentication.k8s.io/exec extension. It is parsed strictly
// from YAML, so a field the API does not have fails the test.
func (f *fleet) profile(t *testing.T, name string) *v1alpha1.ClusterProfile {
	t.Helper()
	api := f.APIs[name]
	manifest := `apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ClusterProfile
metadata:
  name: ` + name + `
  namespace: fleet
spec:
  clusterManager:
    name: example-manager
status:
  accessProviders:
  - name: brokercred
    cluster:
      server: ` + api.URL + `
      certificate-authority-data: ` + api.CAData() + `
      extensions:
      - name: client.authentication.k8s.io/exec
        extension:
          clusterName: ` + name + `
`
	var cp v1alpha1.ClusterProfile
	if err := yaml.UnmarshalStrict([]byte(manifest), &cp); err != nil {
		t.Fatalf("ClusterProfile %s: %v", name, err)
	}
	return &cp
}

// restConfig reads the provider file with access.NewFromFile and builds
// the profile's client config with BuildConfigFromCP.
func restConfig(t *testing.T, providerFile string, cp *v1alpha1.ClusterProfile) *rest.Config {
	t.Helper()
	providers, err := access.NewFromFile(providerFile)
	if err != nil {
		t.Fatalf("access.NewFromFile: %v", err)
	}
	cfg, err := providers.BuildConfigFromCP(cp)
	if err != nil {
		t.Fatalf("BuildConfigFromCP(%s): %v", cp.Name, err)
	}
	return cfg
}

// TestClusterProfileProvider reaches two ClusterProfiles through one
// provider file: each gets a token for the clusterName in its own profile.
func TestClusterProfileProvider(t *testing.T) {
	f := newFleet(t, "east", "west")
	file := f.providerFile(t)
	for _, name := range []string{"east", "west", "east"} {
		cfg := restConfig(t, file, f.profile(t, name))
		if cfg.ExecProvider == nil || !cfg.ExecProvider.ProvideClusterInfo || cfg.ExecProvider.Config == nil {
			t.Fatalf("%s: exec provider %+v, want provideClusterInfo with the profile's exec extension", name, cfg.ExecProvider)
		}
		got, err := testkit.ServerVersion(cfg)
		if err != nil {
			t.Fatalf("%s: ServerVersion: %v", name, err)
		}
		if got != brokertest.APIServerVersion {
			t.Errorf("%s: server version %q, want %q", name, got, brokertest.APIServerVersion)
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

// TestClusterProfileAllowedTargets pins the provider to east: a profile
// naming west, which anybody who can write ClusterProfiles could publish,
// is refused before any broker call.
func TestClusterProfileAllowedTargets(t *testing.T) {
	f := newFleet(t, "east", "west")
	file := f.providerFile(t, "east")
	if _, err := testkit.ServerVersion(restConfig(t, file, f.profile(t, "west"))); err == nil {
		t.Fatal("ServerVersion for west succeeded with --allowed-targets=east")
	}
	if _, err := testkit.ServerVersion(restConfig(t, file, f.profile(t, "east"))); err != nil {
		t.Fatalf("east: ServerVersion: %v", err)
	}
	if got := f.AskedTargets(); got != "east" {
		t.Errorf("broker was asked for %q, want east only", got)
	}
}
