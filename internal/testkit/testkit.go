// Package testkit holds what brokercred's end-to-end tests share across
// their Go modules: building the binary, a fleet of fake clusters behind the
// fake broker, finding the real kubectl binaries on this machine, and asking
// an API server for its version through client-go.
package testkit

import (
	"context"
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

// BuildBrokercred builds the brokercred binary from the main module at root
// (its own go.mod, whatever module the test runs in) into a temp dir.
func BuildBrokercred(t testing.TB, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "brokercred")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build brokercred: %v\n%s", err, out)
	}
	return bin
}

// Fleet is a fake broker, one fake API server per cluster name that trusts
// that broker's tokens for its name, a pod token for Subject, and the
// brokercred binary: the remote side of a fleet of clusters.
type Fleet struct {
	Bin       string
	Broker    *brokertest.Server
	APIs      map[string]*brokertest.APIServer
	Dir       string // holds the pod token, CA files and the cache
	TokenFile string
}

// NewFleet starts the broker and one API server per name, all stopped when
// the test ends, and builds brokercred from root.
func NewFleet(t testing.TB, root, subject string, names ...string) *Fleet {
	t.Helper()
	f := &Fleet{Bin: BuildBrokercred(t, root), Broker: brokertest.NewServer(brokertest.Options{}),
		APIs: map[string]*brokertest.APIServer{}, Dir: t.TempDir()}
	t.Cleanup(f.Broker.Close)
	for _, name := range names {
		api := brokertest.NewAPIServer(f.Broker, name)
		t.Cleanup(api.Close)
		f.APIs[name] = api
	}
	f.TokenFile = filepath.Join(f.Dir, "token")
	if err := os.WriteFile(f.TokenFile, []byte(brokertest.PodToken(subject, time.Now().Add(time.Hour))), 0o600); err != nil {
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
