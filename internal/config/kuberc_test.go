package config

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
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
	kubectls := kubectlsWithKuberc(t)
	if len(kubectls) == 0 {
		t.Skip("no kubectl 1.35 or later (the first to read credentialPluginPolicy from kuberc): build one with e2e/kube/build.sh kubectl v1.37.2")
	}
	bin := buildBinary(t)
	elsewhere := filepath.Join(t.TempDir(), "brokercred")
	copyFile(t, bin, elsewhere)
	kuberc := writeFile(t, t.TempDir(), "kuberc", strings.ReplaceAll(readmeKuberc(t), readmeInstallPath, bin))

	for _, name := range testkit.SortedNames(kubectls) {
		t.Run(name, func(t *testing.T) {
			t.Run("allowed by its full path", func(t *testing.T) {
				f := newFleet(t, "dev-cluster")
				config := f.generatedKubeconfig(t, bin, bin, "dev-cluster")
				stdout, stderr, err := runKubectl(t, kubectls[name], []string{"KUBERC=" + kuberc}, "--kubeconfig", config, "get", "--raw", "/version")
				f.noTokenIn(t, stdout+stderr)
				if err != nil {
					t.Fatalf("get --raw /version: %v\nstderr:\n%s", err, stderr)
				}
				if !strings.Contains(stdout, brokertest.APIServerVersion) {
					t.Errorf("stdout = %q, want it to contain %q", stdout, brokertest.APIServerVersion)
				}
				if got := strings.Join(f.askedTargets(), ","); got != "dev-cluster" {
					t.Errorf("broker was asked for %q, want dev-cluster once", got)
				}
			})
			t.Run("not on the list", func(t *testing.T) {
				f := newFleet(t, "dev-cluster")
				config := f.generatedKubeconfig(t, bin, elsewhere, "dev-cluster")
				_, stderr, err := runKubectl(t, kubectls[name], []string{"KUBERC=" + kuberc}, "--kubeconfig", config, "get", "--raw", "/version")
				// client-go's exec.Authenticator.checkAllowlistLocked.
				want := `plugin path "` + elsewhere + `" is not permitted by the credential plugin allowlist`
				if err == nil || !strings.Contains(stderr, want) {
					t.Errorf("kubectl: %v, stderr %q; want a failure saying %s", err, stderr, want)
				}
				if n := len(f.broker.Requests()); n != 0 {
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
	stdout, _, err := runKubectl(t, path, nil, "version", "--client", "-o", "json")
	if err != nil {
		return 0, false
	}
	var v struct {
		ClientVersion struct {
			Major, Minor string
		} `json:"clientVersion"`
	}
	if json.Unmarshal([]byte(stdout), &v) != nil || v.ClientVersion.Major != "1" {
		return 0, false
	}
	minor, err := strconv.Atoi(strings.TrimSuffix(v.ClientVersion.Minor, "+"))
	return minor, err == nil
}

// readmeKuberc is the kuberc of docs/kubectl.md: its yaml block
// of kind Preference.
func readmeKuberc(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "kubectl.md"))
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

// generatedKubeconfig has `brokercred config kubeconfig` (the binary bin)
// write a kubeconfig for f's cluster name whose user runs command, and
// returns its path.
func (f *fleet) generatedKubeconfig(t *testing.T, bin, command, name string) string {
	t.Helper()
	api := f.apis[name]
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "config", "kubeconfig",
		"--name", name, "--server", api.URL, "--server-ca-file", api.CAFile(t.TempDir()),
		"--broker-url", f.broker.URL, "--ca-file", f.broker.CAFile(f.dir), "--token-file", f.tokenFile,
		"--cache-dir", filepath.Join(t.TempDir(), "cache"), "--command", command)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no BROKERCRED_* defaults
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("brokercred config kubeconfig: %v\nstderr:\n%s", err, stderr.String())
	}
	return writeFile(t, t.TempDir(), "kubeconfig", string(out))
}

// noTokenIn fails the test if text holds any token the broker issued.
func (f *fleet) noTokenIn(t *testing.T, text string) {
	t.Helper()
	for _, token := range f.broker.Issued() {
		if leak := brokertest.Leak(text, token); leak != "" {
			t.Errorf("kubectl output holds %s", leak)
		}
	}
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
