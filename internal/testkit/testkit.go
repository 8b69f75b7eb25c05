// Package testkit holds what brokercred's end-to-end tests share across
// their Go modules: building the binary, a fleet of fake clusters behind the
// fake broker, finding the real kubectl binaries on this machine, writing a
// kubeconfig that runs a credential plugin, and asking an API server for its
// version through client-go.
package testkit

import (
	"context"
	"encoding/json"
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

// Kubectls finds the kubectl on PATH and every kubectl.1.* beside the
// resolved gcloud (the Google Cloud SDK's bin directory), each binary once,
// keyed by file name.
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

// CacheEntries lists the entry files brokercred keeps under the cache
// directory dir: they live in the calling user's private subdirectory.
func CacheEntries(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "user-*", "*.json"))
}

// Kubeconfig is a kubeconfig whose one context reaches server (its CA given
// as base64 PEM) as a user that runs command with args through the exec
// credential plugin protocol, client.authentication.k8s.io/v1, never
// interactively. Strings are JSON-quoted, which YAML reads as
// double-quoted scalars.
func Kubeconfig(server, caData, command string, args []string) string {
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\n")
	b.WriteString("clusters:\n- name: remote\n  cluster:\n")
	b.WriteString("    server: " + q(server) + "\n")
	b.WriteString("    certificate-authority-data: " + q(caData) + "\n")
	b.WriteString("users:\n- name: plugin\n  user:\n    exec:\n")
	b.WriteString("      apiVersion: client.authentication.k8s.io/v1\n")
	b.WriteString("      command: " + q(command) + "\n")
	b.WriteString("      interactiveMode: Never\n")
	b.WriteString("      args:\n")
	for _, a := range args {
		b.WriteString("      - " + q(a) + "\n")
	}
	b.WriteString("contexts:\n- name: remote\n  context:\n    cluster: remote\n    user: plugin\n")
	b.WriteString("current-context: remote\n")
	return b.String()
}
