package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// readmeInstallPath is where the recipes in docs/ install brokercred; the
// test puts the path of the binary it built in its place.
const readmeInstallPath = "/usr/local/bin/brokercred"

// TestKubercAllowlist runs the kuberc recipe of docs/kubectl.md through every kubectl
// 1.35 or later on this machine: with credentialPluginPolicy Allowlist
// naming brokercred by its full path, the kubeconfig that `brokercred config
// kubeconfig` prints works; the same binary at a path not on the list is
// refused by kubectl before it runs, and the broker never hears of it.
func TestKubercAllowlist(t *testing.T) {
	t.Parallel() // its own fixtures; the kubectl-bound tests overlap each other
	kubectls := kubectlsWithKuberc(t)
	if len(kubectls) == 0 {
		t.Skip("no kubectl 1.35 or later (the first to read credentialPluginPolicy from kuberc): build one with e2e/kube/build.sh kubectl v1.37.2")
	}
	elsewhere := filepath.Join(t.TempDir(), "brokercred")
	copyFile(t, binary, elsewhere)
	kuberc := filepath.Join(t.TempDir(), "kuberc")
	if err := os.WriteFile(kuberc, []byte(strings.ReplaceAll(readmeKuberc(t), readmeInstallPath, binary)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, name := range testkit.SortedNames(kubectls) {
		t.Run(name, func(t *testing.T) {
			t.Run("allowed by its full path", func(t *testing.T) {
				f := newFixture(t, withClusters("dev-cluster"))
				f.target = "dev-cluster"
				config := f.kubeconfig(t, "dev-cluster", false)
				r := runKubectl(t, kubectls[name], []string{"KUBERC=" + kuberc}, "--kubeconfig", config, "get", "--raw", "/version")
				brokertest.NoLeak(t, "kubectl output", r.Stdout+r.Stderr, f.secrets()...)
				if r.Code != 0 {
					t.Fatalf("get --raw /version: exit code %d\nstderr:\n%s", r.Code, redact(r.Stderr))
				}
				if !strings.Contains(r.Stdout, brokertest.APIServerVersion) {
					t.Errorf("stdout = %q, want it to contain %q", redact(r.Stdout), brokertest.APIServerVersion)
				}
				if got := f.AskedTargets(); got != "dev-cluster" {
					t.Errorf("broker was asked for %q, want dev-cluster once", got)
				}
			})
			t.Run("not on the list", func(t *testing.T) {
				f := newFixture(t, withClusters("dev-cluster"))
				f.target, f.command = "dev-cluster", elsewhere
				config := f.kubeconfig(t, "dev-cluster", false)
				r := runKubectl(t, kubectls[name], []string{"KUBERC=" + kuberc}, "--kubeconfig", config, "get", "--raw", "/version")
				// client-go's exec.Authenticator.checkAllowlistLocked.
				want := `plugin path "` + elsewhere + `" is not permitted by the credential plugin allowlist`
				if r.Code == 0 || !strings.Contains(r.Stderr, want) {
					t.Errorf("kubectl: exit code %d, stderr %q; want a failure saying %s", r.Code, redact(r.Stderr), want)
				}
				if n := len(f.Broker.Requests()); n != 0 {
					t.Errorf("broker got %d requests, want none: kubectl must not run a plugin off the list", n)
				}
			})
		})
	}
}

// kubectlsWithKuberc are the kubectls of testkit.Kubectls at version 1.35 or
// later, as `kubectl version --client` reports it.
func kubectlsWithKuberc(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	for name, path := range testkit.Kubectls() {
		if minor, ok := kubectlMinor(t, path); ok && minor >= 35 {
			found[name] = path
		}
	}
	return found
}

// kubectlMinor is the minor version kubectl at path reports for itself;
// false when it says nothing readable.
func kubectlMinor(t *testing.T, path string) (int, bool) {
	t.Helper()
	r := runKubectl(t, path, nil, "version", "--client", "-o", "json")
	if r.Code != 0 {
		return 0, false
	}
	var v struct {
		ClientVersion struct {
			Major, Minor string
		} `json:"clientVersion"`
	}
	if json.Unmarshal([]byte(r.Stdout), &v) != nil || v.ClientVersion.Major != "1" {
		return 0, false
	}
	minor, err := strconv.Atoi(strings.TrimSuffix(v.ClientVersion.Minor, "+"))
	return minor, err == nil
}

// readmeKuberc is the kuberc of docs/kubectl.md: its yaml block
// of kind Preference.
func readmeKuberc(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("docs", "kubectl.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1) {
		if bytes.Contains(m[1], []byte("\nkind: Preference\n")) {
			return string(m[1])
		}
	}
	t.Fatal("docs/kubectl.md has no yaml block of kind Preference (the kuberc recipe)")
	return ""
}

// copyFile copies the executable src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
