// Package testkit holds what brokercred's process tests share across their
// Go modules: building the binary, running a process with a clean
// environment, a fleet of fake clusters behind the fake broker speaking one
// protocol, finding the real kubectl binaries on this machine, and asking an
// API server for its version through client-go.
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
	"syscall"
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

// Fleet is a fake broker, a fake API server per cluster that trusts that
// broker's tokens for it (AddCluster), a pod token, and the brokercred
// binary: the remote side of a fleet of clusters, reached by one protocol.
type Fleet struct {
	Bin string // empty when StartFleet built none
	// Protocol is the --protocol brokercred calls Broker by, and BrokerURL
	// the --broker-url where Broker serves it.
	Protocol, BrokerURL string
	Broker              *brokertest.Server
	APIs                map[string]*brokertest.APIServer // by cluster name
	Dir                 string                           // holds the pod token, CA files and the cache
	TokenFile           string
}

// NewFleet starts the default broker for protocol and one API server per
// name, all stopped when the test ends, with a pod token for subject, and
// builds brokercred from root.
func NewFleet(t testing.TB, root, protocol, subject string, names ...string) *Fleet {
	t.Helper()
	f := StartFleet(t, protocol, brokertest.Options{}, brokertest.PodToken(subject, time.Now().Add(time.Hour)), names...)
	f.Bin = BuildBrokercred(t, root)
	return f
}

// StartFleet starts a broker with opts for protocol (one of
// brokertest.Protocols) and one API server per name, all stopped when the
// test ends, and writes podToken to TokenFile. It builds no binary: Bin is
// empty, for a caller that has built one already.
func StartFleet(t testing.TB, protocol string, opts brokertest.Options, podToken string, names ...string) *Fleet {
	t.Helper()
	f := &Fleet{Protocol: protocol, Broker: brokertest.NewServer(opts), APIs: map[string]*brokertest.APIServer{}, Dir: t.TempDir()}
	t.Cleanup(f.Broker.Close)
	if f.BrokerURL = f.Broker.Endpoint(protocol); f.BrokerURL == "" {
		t.Fatalf("brokertest serves no protocol %q; it serves %v", protocol, brokertest.Protocols())
	}
	for _, name := range names {
		f.AddCluster(t, name, name)
	}
	f.TokenFile = filepath.Join(f.Dir, "token")
	if err := os.WriteFile(f.TokenFile, []byte(podToken), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// AddCluster starts an API server for the cluster called name, stopped when
// the test ends, that trusts the broker's tokens for audience: the name
// itself, or what the protocol's settings make of it (api://NAME for a
// scope api://{target}/.default).
func (f *Fleet) AddCluster(t testing.TB, name, audience string) *brokertest.APIServer {
	t.Helper()
	api := brokertest.NewAPIServer(f.Broker, audience)
	t.Cleanup(api.Close)
	f.APIs[name] = api
	return api
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

// ProcessTimeout bounds every process Exec and Run start, so that a hang
// fails the test instead of stalling the run.
const ProcessTimeout = 2 * time.Minute

// Result is what one process left behind.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Exec runs argv[0] with the rest as arguments, exactly env, and as attr
// says (nil: as this process's user), within ProcessTimeout. An exit status
// is a result; only failing to run at all is an error. It is safe to call
// from several goroutines at once.
func Exec(env []string, attr *syscall.SysProcAttr, argv ...string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = attr
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var exitErr *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &exitErr) {
		return Result{}, fmt.Errorf("run %s: %w", filepath.Base(argv[0]), err)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}, nil
}

// Run is Exec for a test, as this process's user: a process that cannot
// start fails the test; one that exits non-zero does not.
func Run(t testing.TB, env []string, path string, args ...string) Result {
	t.Helper()
	r, err := Exec(env, nil, append([]string{path}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
