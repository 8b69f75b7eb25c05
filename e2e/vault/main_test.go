package vault

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/e2e/kube/kubeworld"
	"github.com/brokercred/brokercred/internal/testkit"
)

// Versions of the servers the test runs: the Vault release build.sh builds
// by default and the newest kube-apiserver e2e/kube runs (.ci/e2e builds
// both before go test).
const (
	vaultVersion = "v1.21.0"
	kubeVersion  = "v1.37.2"
)

// The programs the test runs, found or built once by TestMain.
var (
	brokercred    string // built from the main module
	vaultBin      string // BROKERCRED_E2E_VAULT, or build.sh's output when it exists
	kubeAPIServer string // KUBE_APISERVER, or built by ../kube/build.sh
	etcd          string // ETCD, or etcd on PATH
	kubectl       string // from testkit.Kubectls: kubectl on PATH first
	// missing says why the test cannot run here; it skips with it.
	missing string
)

// buildTimeout bounds go build of brokercred and of kube-apiserver (which
// is instant once built; .ci/e2e builds it first on a cold machine).
const buildTimeout = 30 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	vaultBin, missing = findVault()
	if missing == "" {
		etcd, missing = kubeworld.Etcd()
	}
	if missing == "" {
		kubectl, missing = findKubectl()
	}
	if missing != "" {
		return m.Run() // every test skips with missing; nothing to build
	}
	dir, err := os.MkdirTemp("", "brokercred-e2e-vault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if brokercred, err = testkit.Build(filepath.Join("..", ".."), dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if kubeAPIServer = os.Getenv("KUBE_APISERVER"); kubeAPIServer == "" {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		if kubeAPIServer, err = kubeworld.BuildKubeAPIServer(ctx, filepath.Join("..", "kube", "build.sh"), kubeVersion); err != nil {
			fmt.Fprintf(os.Stderr, "build kube-apiserver %s: %v\n", kubeVersion, err)
			return 1
		}
	}
	return m.Run()
}

// findVault is $BROKERCRED_E2E_VAULT, else the binary build.sh keeps in
// testkit.BuiltDir, else "" and how to get one.
func findVault() (path, missing string) {
	if path = os.Getenv("BROKERCRED_E2E_VAULT"); path != "" {
		if _, err := exec.LookPath(path); err != nil {
			return "", fmt.Sprintf("BROKERCRED_E2E_VAULT=%s is not an executable: %v", path, err)
		}
		return path, ""
	}
	if dir := testkit.BuiltDir(); dir != "" {
		path = filepath.Join(dir, "vault-"+vaultVersion, "vault")
		if _, err := exec.LookPath(path); err == nil {
			return path, ""
		}
	}
	return "", "no Vault " + vaultVersion + " binary: run e2e/vault/build.sh (about 18 minutes, once) or set BROKERCRED_E2E_VAULT"
}

// findKubectl prefers the kubectl on PATH, else the newest kubectl-v* that
// e2e/kube/build.sh built.
func findKubectl() (path, missing string) {
	kubectls := testkit.Kubectls()
	if p, ok := kubectls["kubectl"]; ok {
		return p, ""
	}
	var newest string
	for _, name := range testkit.SortedNames(kubectls) {
		if strings.HasPrefix(name, "kubectl-v") {
			newest = kubectls[name]
		}
	}
	if newest == "" {
		return "", "no kubectl on PATH and none built by e2e/kube/build.sh"
	}
	return newest, ""
}

// needAll skips the test when a program it runs is not there.
func needAll(t *testing.T) {
	t.Helper()
	if missing != "" {
		t.Skip(missing)
	}
}
