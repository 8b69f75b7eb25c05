// Package testkit holds what brokercred's end-to-end tests share across
// their Go modules: building the binary, a fleet of fake clusters behind the
// fake broker, finding the real kubectl binaries on this machine, writing a
// kubeconfig that runs a credential plugin, and asking an API server for its
// version through client-go.
package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// Kubectls finds the kubectl on PATH, every kubectl.1.* beside the resolved
// gcloud (the Google Cloud SDK's bin directory) and every kubectl-v* that
// e2e/kube/build.sh built into BuiltDir, each binary once, keyed by file
// name. Any of them that is missing is left out.
func Kubectls() map[string]string {
	var paths []string
	if p, err := exec.LookPath("kubectl"); err == nil {
		paths = append(paths, p)
	}
	if p, err := exec.LookPath("gcloud"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			versioned, _ := filepath.Glob(filepath.Join(filepath.Dir(real), "kubectl.1.*"))
			paths = append(paths, versioned...)
		}
	}
	if dir := BuiltDir(); dir != "" {
		built, _ := filepath.Glob(filepath.Join(dir, "kubectl-v*"))
		paths = append(paths, built...)
	}
	found := map[string]string{}
	seen := map[string]bool{}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		found[filepath.Base(p)] = p
	}
	return found
}

// BuiltDir is where e2e/kube/build.sh keeps the Kubernetes binaries it
// builds: $BROKERCRED_E2E_DIR, else $(go env GOCACHE)/../brokercred-e2e as
// in build.sh. It is "" when go env fails or the build cache is off; the
// directory need not exist.
func BuiltDir() string {
	if dir := os.Getenv("BROKERCRED_E2E_DIR"); dir != "" {
		return dir
	}
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	gocache := strings.TrimSpace(string(out))
	if err != nil || gocache == "" || gocache == "off" {
		return ""
	}
	return filepath.Join(filepath.Dir(gocache), "brokercred-e2e")
}

// SortedNames are the keys of Kubectls' result, in order.
func SortedNames(kubectls map[string]string) []string {
	names := make([]string, 0, len(kubectls))
	for name := range kubectls {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ServerVersion asks the API server cfg points at for its version, through
// client-go's discovery client: the request goes through cfg's exec
// credential plugin like any other.
func ServerVersion(cfg *rest.Config) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// Build builds the brokercred binary from the main module at root (its own
// go.mod, whatever module the caller runs in) into dir and returns its path.
// It is for a TestMain, which has no testing.TB; a test calls
// BuildBrokercred.
func Build(root, dir string) (string, error) {
	bin := filepath.Join(dir, "brokercred")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build brokercred: %w\n%s", err, out)
	}
	return bin, nil
}

// BuildBrokercred builds the brokercred binary from the main module at root
// into a temp dir, as Build does.
func BuildBrokercred(t testing.TB, root string) string {
	t.Helper()
	bin, err := Build(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Fleet is a fake broker, one fake API server per cluster name that trusts
// that broker's tokens for its name, a pod token, and the brokercred
// binary: the remote side of a fleet of clusters.
type Fleet struct {
	Bin       string // empty when StartFleet built none
	Broker    *brokertest.Server
	APIs      map[string]*brokertest.APIServer
	Dir       string // holds the pod token, CA files and the cache
	TokenFile string
}

// NewFleet starts the default broker and one API server per name, all
// stopped when the test ends, with a pod token for subject, and builds
// brokercred from root.
func NewFleet(t testing.TB, root, subject string, names ...string) *Fleet {
	t.Helper()
	f := StartFleet(t, brokertest.Options{}, brokertest.PodToken(subject, time.Now().Add(time.Hour)), names...)
	f.Bin = BuildBrokercred(t, root)
	return f
}

// StartFleet starts a broker with opts and one API server per name, all
// stopped when the test ends, and writes podToken to TokenFile. It builds
// no binary: Bin is empty, for a caller that has built one already.
func StartFleet(t testing.TB, opts brokertest.Options, podToken string, names ...string) *Fleet {
	t.Helper()
	f := &Fleet{Broker: brokertest.NewServer(opts), APIs: map[string]*brokertest.APIServer{}, Dir: t.TempDir()}
	t.Cleanup(f.Broker.Close)
	for _, name := range names {
		api := brokertest.NewAPIServer(f.Broker, name)
		t.Cleanup(api.Close)
		f.APIs[name] = api
	}
	f.TokenFile = filepath.Join(f.Dir, "token")
	if err := os.WriteFile(f.TokenFile, []byte(podToken), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// AskedTargets are the targets the broker was asked for, in order, joined
// by commas.
func (f *Fleet) AskedTargets() string {
	var targets []string
	for _, r := range f.Broker.Requests() {
		targets = append(targets, r.Target)
	}
	return strings.Join(targets, ",")
}

// CacheEntries lists the entry files brokercred keeps under the cache
// directory dir: they live in the calling user's private subdirectory and
// are named by the hex SHA-256 of their key, so other JSON files there (a
// shared dir's package.json) are none.
func CacheEntries(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "user-*", strings.Repeat("[0-9a-f]", 64)+".json"))
}

// Kubeconfig is the kubeconfig brokercred's own generator writes (`bin
// config kubeconfig`) for a cluster at server, trusted through the PEM in
// caFile, whose user runs bin with the token flags args.
func Kubeconfig(t testing.TB, bin, server, caFile string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"config", "kubeconfig", "--name", "remote", "--server", server,
		"--server-ca-file", caFile, "--command", bin}, args...)...)
	cmd.Env = []string{"HOME=" + t.TempDir()} // no BROKERCRED_* of this process
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("brokercred config kubeconfig: %v: %s", err, stderr.String())
	}
	return string(out)
}

// Env is this process's environment without anything that configures
// brokercred or kubectl or claims to come from client-go, with HOME and
// XDG_CACHE_HOME in fresh temp dirs, plus extra.
func Env(t testing.TB, extra ...string) []string {
	t.Helper()
	env := []string{"HOME=" + t.TempDir(), "XDG_CACHE_HOME=" + t.TempDir()}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "HOME", name == "XDG_CACHE_HOME", name == "KUBECONFIG", name == "KUBERNETES_EXEC_INFO", strings.HasPrefix(name, "BROKERCRED_"):
		default:
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// Result is what one process left behind.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs path with args and exactly env, within two minutes. A process
// that cannot start fails the test; one that exits non-zero does not.
func Run(t testing.TB, env []string, path string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var exitErr *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", filepath.Base(path), err)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}
