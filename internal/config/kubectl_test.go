package config

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
	"github.com/brokercred/brokercred/internal/token"
)

// processTimeout bounds one go build or kubectl process, so a hang fails
// the test instead of stalling the run.
const processTimeout = 2 * time.Minute

const podSubject = "system:serviceaccount:argocd:argocd-application-controller"

// buildBinary builds brokercred from the module root into a temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	return testkit.BuildBrokercred(t, "../..")
}

// fleet is one fake broker and a fake API server per cluster name, plus
// the files a pod would have to call the broker.
type fleet struct {
	broker    *brokertest.Server
	apis      map[string]*brokertest.APIServer
	dir       string
	tokenFile string
}

func newFleet(t *testing.T, names ...string) *fleet {
	t.Helper()
	f := &fleet{broker: brokertest.NewServer(brokertest.Options{}), apis: map[string]*brokertest.APIServer{}, dir: t.TempDir()}
	t.Cleanup(f.broker.Close)
	for _, name := range names {
		api := brokertest.NewAPIServer(f.broker, name)
		t.Cleanup(api.Close)
		f.apis[name] = api
	}
	f.tokenFile = writeFile(t, f.dir, "token", brokertest.PodToken(podSubject, time.Now().Add(time.Hour)))
	return f
}

// kubeconfig generates a kubeconfig for the named cluster with the
// Kubeconfig generator under test, and writes it into dir.
func (f *fleet) kubeconfig(t *testing.T, bin, name, cacheDir string, clusterInfo bool) string {
	t.Helper()
	api := f.apis[name]
	k := Kubeconfig{
		Cluster: Cluster{Name: name, Server: api.URL, ServerCAFile: api.CAFile(t.TempDir())},
		Exec: Exec{Command: bin, Options: token.Options{
			BrokerURL: f.broker.URL, CAFile: f.broker.CAFile(f.dir), TokenFile: f.tokenFile, CacheDir: cacheDir,
		}},
	}
	k.ClusterInfo = clusterInfo
	out, err := k.YAML()
	if err != nil {
		t.Fatalf("Kubeconfig.YAML: %v", err)
	}
	return writeFile(t, t.TempDir(), "kubeconfig", string(out))
}

// askedTargets is the targets the broker was asked for, in order.
func (f *fleet) askedTargets() []string {
	var targets []string
	for _, r := range f.broker.Requests() {
		targets = append(targets, r.Target)
	}
	return targets
}

// runKubectl runs kubectl with its own HOME, so it reads and writes nothing
// in the real ~/.kube, and with extraEnv in place of any KUBECONFIG or
// BROKERCRED_* of this process.
func runKubectl(t *testing.T, path string, extraEnv []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = testkit.Env(t, extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestKubectlRunsGeneratedKubeconfig(t *testing.T) {
	bins := testkit.Kubectls()
	if len(bins) == 0 {
		t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
	}
	bin := buildBinary(t)
	names := make([]string, 0, len(bins))
	for name := range bins {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Run("target", func(t *testing.T) { testKubectlTarget(t, bins[name], bin) })
			t.Run("cluster-info", func(t *testing.T) { testKubectlClusterInfo(t, bins[name], bin) })
		})
	}
}

// testKubectlTarget runs the plain generated kubeconfig twice: the first
// run asks the broker for the cluster's name, the second is served from the
// cache.
func testKubectlTarget(t *testing.T, kubectl, bin string) {
	f := newFleet(t, "dev-cluster")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	config := f.kubeconfig(t, bin, "dev-cluster", cacheDir, false)
	for run := 1; run <= 2; run++ {
		stdout, stderr, err := runKubectl(t, kubectl, nil, "--kubeconfig", config, "get", "--raw", "/version")
		if err != nil {
			t.Fatalf("run %d: get --raw /version: %v\nstderr:\n%s", run, err, stderr)
		}
		if !strings.Contains(stdout, brokertest.APIServerVersion) {
			t.Errorf("run %d: stdout = %q, want it to contain %q", run, stdout, brokertest.APIServerVersion)
		}
	}
	if got := strings.Join(f.askedTargets(), ","); got != "dev-cluster" {
		t.Errorf("broker was asked for %q, want dev-cluster once (the second run from the cache)", got)
	}
	// The gcloud kubectl dispatcher asks for /version itself before it
	// picks a kubectl, so count at least one request per run.
	if api := f.apis["dev-cluster"]; api.Accepted() < 2 || api.Rejected() != 0 {
		t.Errorf("API server accepted %d and rejected %d requests, want at least 2 and none", api.Accepted(), api.Rejected())
	}
}

// testKubectlClusterInfo merges the --cluster-info kubeconfigs of two
// clusters through KUBECONFIG, as a user would, into one shared brokercred
// user without --target; each context must get a token for its own cluster,
// and repeats come from the cache.
func testKubectlClusterInfo(t *testing.T, kubectl, bin string) {
	f := newFleet(t, "east", "west")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	merged := "KUBECONFIG=" + f.kubeconfig(t, bin, "east", cacheDir, true) + string(os.PathListSeparator) + f.kubeconfig(t, bin, "west", cacheDir, true)
	for _, context := range []string{"east", "west", "east", "west"} {
		stdout, stderr, err := runKubectl(t, kubectl, []string{merged}, "--context", context, "get", "--raw", "/version")
		if err != nil {
			t.Fatalf("--context %s get --raw /version: %v\nstderr:\n%s", context, err, stderr)
		}
		if !strings.Contains(stdout, brokertest.APIServerVersion) {
			t.Errorf("--context %s: stdout = %q, want it to contain %q", context, stdout, brokertest.APIServerVersion)
		}
	}
	if got := strings.Join(f.askedTargets(), ","); got != "east,west" {
		t.Errorf("broker was asked for %q, want east,west (one each; repeats from the cache)", got)
	}
	for name, api := range f.apis {
		if api.Accepted() < 2 || api.Rejected() != 0 {
			t.Errorf("API server %s accepted %d and rejected %d requests, want at least 2 and none", name, api.Accepted(), api.Rejected())
		}
	}
	if entries, _ := testkit.CacheEntries(cacheDir); len(entries) != 2 {
		t.Errorf("cache holds %d entries, want 2 (one per cluster)", len(entries))
	}
}
