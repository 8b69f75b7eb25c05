package main

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/cache"
	"github.com/brokercred/brokercred/internal/testkit"
)

// binary is the brokercred executable built once by TestMain; every test in
// this package runs it as a real process, the way kubectl and Argo CD do.
// This is the only build of it in `go test ./...`: a test of the main
// module that runs brokercred as a process belongs in this package (the e2e
// modules build their own, through testkit.NewFleet).
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds brokercred with testkit into a temp dir that any user
// may enter, so a test can run it as another user, runs the tests and
// removes the binary again.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "brokercred-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "make build dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "open build dir to other users: %v\n", err)
		return 1
	}
	if binary, err = testkit.Build(".", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// podSubject is distinctive so that a leak of the pod token is easy to see.
const podSubject = "system:serviceaccount:argocd:needle-in-haystack"

// settings are what newFixture starts; options change them.
type settings struct {
	protocol string // "": the default, and no --protocol flag
	broker   brokertest.Options
	subject  string
	clusters []string
}

// option changes what newFixture starts.
type option func(*settings)

// withProtocol has brokercred call the broker by protocol, with
// --protocol, instead of by the default get-target-token without the flag.
func withProtocol(protocol string) option {
	return func(s *settings) { s.protocol = protocol }
}

// withBroker starts the broker with opts instead of brokertest's defaults.
func withBroker(opts brokertest.Options) option {
	return func(s *settings) { s.broker = opts }
}

// withSubject gives the pod token another subject than podSubject.
func withSubject(subject string) option {
	return func(s *settings) { s.subject = subject }
}

// withClusters starts a fake API server for each named cluster that trusts
// the broker's tokens for that name.
func withClusters(names ...string) option {
	return func(s *settings) { s.clusters = names }
}

// fixture is the remote side (testkit's fleet: the fake broker and an API
// server per cluster), the files one pod would have to call the broker, and
// how a test runs brokercred against them: the flags of a token call, the
// environment, the user, and the secrets nothing may show.
type fixture struct {
	*testkit.Fleet

	// The flags of a `brokercred token` call; an empty one is left out.
	protocol, brokerURL, caFile, tokenFile, cacheDir, target string
	extra                                                    []string // more flags, after those
	// command is the path a generated kubeconfig runs; empty means Bin.
	command string

	env  []string
	attr *syscall.SysProcAttr // nil runs brokercred as this process's user
	// wrap is a command that runs brokercred, its path and arguments
	// appended, such as a shell that sets a ulimit first; nil runs it
	// directly.
	wrap []string

	podToken string // what tokenFile holds
	// planted are secrets besides podToken and the broker's tokens that
	// nothing may show: pod tokens written before, tokens planted in the
	// cache, a marker in a broker's page.
	planted []string
	// heal undoes what a fault did that the next call would trip over.
	heal []func()
}

// newFixture starts the broker (and API servers) opts ask for and writes a
// sentinel pod token for podSubject; the token call targets prod-east.
func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	s := settings{subject: podSubject}
	for _, o := range opts {
		o(&s)
	}
	podToken := sentinelPodToken(s.subject)
	fleet := testkit.StartFleet(t, cmp.Or(s.protocol, broker.DefaultProtocol), s.broker, podToken, s.clusters...)
	fleet.Bin = binary
	return &fixture{
		Fleet:     fleet,
		protocol:  s.protocol,
		brokerURL: fleet.BrokerURL,
		caFile:    fleet.Broker.CAFile(fleet.Dir),
		tokenFile: fleet.TokenFile,
		cacheDir:  filepath.Join(fleet.Dir, "cache"),
		target:    "prod-east",
		env:       testkit.Env(t),
		podToken:  podToken,
	}
}

// sentinelPodToken is a pod token for subject whose signature part starts
// with POD-SENTINEL. The fake broker reads its claims without verifying it.
func sentinelPodToken(subject string) string {
	tok := brokertest.PodToken(subject, time.Now().Add(time.Hour))
	return tok[:strings.LastIndex(tok, ".")+1] + "POD-SENTINEL-" + randomB64(48)
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// writePodToken replaces the pod token file, as the kubelet would; the
// token it held stays a secret.
func (f *fixture) writePodToken(t *testing.T, token string) {
	t.Helper()
	f.planted = append(f.planted, f.podToken)
	f.podToken = token
	if err := os.WriteFile(f.tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
}

// secrets are every secret nothing may show: the pod token, all the
// broker handed out, and all planted.
func (f *fixture) secrets() []string {
	return slices.Concat([]string{f.podToken}, f.Broker.Secrets(), f.planted)
}

// flags are the token call's flags for the fixture's settings, then extra.
func (f *fixture) flags() []string {
	var flags []string
	for _, flag := range []struct{ name, value string }{
		{"--protocol", f.protocol},
		{"--broker-url", f.brokerURL},
		{"--ca-file", f.caFile},
		{"--token-file", f.tokenFile},
		{"--cache-dir", f.cacheDir},
		{"--target", f.target},
	} {
		if flag.value != "" {
			flags = append(flags, flag.name, flag.value)
		}
	}
	return append(flags, f.extra...)
}

// execute runs brokercred with exactly args, inside wrap, as the fixture's
// user and with its environment.
func (f *fixture) execute(args ...string) (testkit.Result, error) {
	argv := append(append(append([]string(nil), f.wrap...), f.Bin), args...)
	return testkit.Exec(f.env, f.attr, argv...)
}

// run is execute for a test: failing to start is fatal.
func (f *fixture) run(t *testing.T, args ...string) testkit.Result {
	t.Helper()
	r, err := f.execute(args...)
	if err != nil {
		t.Fatalf("run brokercred: %v", err)
	}
	return r
}

// call runs the command (such as token, or token -v, or doctor) with the
// fixture's flags.
func (f *fixture) call(t *testing.T, command ...string) testkit.Result {
	t.Helper()
	return f.run(t, append(command, f.flags()...)...)
}

// herd starts n token calls at once and returns their results.
func (f *fixture) herd(t *testing.T, n int) []testkit.Result {
	t.Helper()
	args := append([]string{"token"}, f.flags()...)
	results := make([]testkit.Result, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = f.execute(args...)
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("run brokercred: %v", err)
	}
	return results
}

// restConfig is a client-go config for the named cluster's API server that
// gets its token by running `brokercred token` with the fixture's flags,
// asking for an ExecCredential of apiVersion.
func (f *fixture) restConfig(cluster, apiVersion string) *rest.Config {
	api := f.APIs[cluster]
	return &rest.Config{
		Host:            api.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: api.CAPEM()},
		ExecProvider: &clientcmdapi.ExecConfig{
			Command:         f.Bin,
			Args:            append([]string{"token"}, f.flags()...),
			APIVersion:      apiVersion,
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
		},
	}
}

// kubeconfig writes the kubeconfig that `brokercred config kubeconfig`
// generates for the named cluster with the fixture's flags, and returns its
// path; its user runs command (empty: Bin). With clusterInfo the cluster
// passes its name to brokercred through provideClusterInfo, and the
// fixture's target must be empty.
func (f *fixture) kubeconfig(t *testing.T, cluster string, clusterInfo bool) string {
	t.Helper()
	dir := t.TempDir()
	api := f.APIs[cluster]
	args := []string{"config", "kubeconfig", "--name", cluster, "--server", api.URL, "--server-ca-file", api.CAFile(dir), "--command", cmp.Or(f.command, f.Bin)}
	if clusterInfo {
		args = append(args, "--cluster-info")
	}
	r := f.run(t, append(args, f.flags()...)...)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("config kubeconfig: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(r.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// execCredential is the part of an ExecCredential a client reads.
type execCredential struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Token               string    `json:"token"`
		ExpirationTimestamp time.Time `json:"expirationTimestamp"`
	} `json:"status"`
}

// parseCredential decodes stdout: one v1 ExecCredential and nothing else.
func parseCredential(t *testing.T, stdout string) execCredential {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var c execCredential
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("stdout is not an ExecCredential: %v\n%s", err, redact(stdout))
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one ExecCredential:\n%s", redact(stdout))
	}
	if c.APIVersion != "client.authentication.k8s.io/v1" || c.Kind != "ExecCredential" || c.Status.Token == "" || c.Status.ExpirationTimestamp.IsZero() {
		t.Fatalf("stdout is an incomplete ExecCredential:\n%s", redact(stdout))
	}
	return c
}

// tokenClaims are token's JWT claims, read by brokercred's own parser; a
// token that is no JWT fails the test.
func tokenClaims(t *testing.T, token string) broker.Claims {
	t.Helper()
	c, err := broker.ParseClaims(token)
	if err != nil {
		t.Fatalf("token claims: %v", err)
	}
	return c
}

// cachedEntries are the entries the cache under dir holds for this
// process's user, as the cache package lists them; a cache it cannot open
// or read fails the test.
func cachedEntries(t *testing.T, dir string) []cache.Entry {
	t.Helper()
	c, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	entries, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// entryFiles are the paths of the files in the cache under dir that are
// named like entries, whatever they hold and whoever owns them: for the
// tests that fault the cache's files, which must know where internal/cache
// keeps them (a private subdirectory per user, named user-UID; an entry per
// key, named by the hex SHA-256 of its key). To count cached tokens, use
// cachedEntries.
func entryFiles(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "user-*", strings.Repeat("[0-9a-f]", 64)+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// tokenLike matches a JWT, and the opaque sentinel pod token of the "pod
// token is not a JWT" case.
var tokenLike = regexp.MustCompile(`eyJ[\w-]*\.[\w-]*\.[\w-]*|OPAQUE-SENTINEL-[\w-]*`)

// redact is a process's output fit for a failure message: every token in it
// replaced by <token>, so that a failing test never prints one.
func redact(output string) string {
	return tokenLike.ReplaceAllString(output, "<token>")
}

// assertOneErrorLine checks the shape of a failure as a user sees it.
func assertOneErrorLine(t *testing.T, r testkit.Result, wantSubstr string) {
	t.Helper()
	if r.Code == 0 {
		t.Errorf("exit code 0, want non-zero")
	}
	if r.Stdout != "" {
		t.Errorf("stdout = %q, want empty on failure", redact(r.Stdout))
	}
	if !strings.HasPrefix(r.Stderr, "brokercred: error: ") || !strings.HasSuffix(r.Stderr, "\n") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("stderr is not one line starting with %q:\n%s", "brokercred: error: ", redact(r.Stderr))
	}
	if !strings.Contains(r.Stderr, wantSubstr) {
		t.Errorf("stderr = %q, want it to contain %q", redact(r.Stderr), wantSubstr)
	}
	assertNoControl(t, "stderr", r.Stderr)
}

// assertNoControl fails when text holds a control or format character
// other than a line end: one that could forge a line, or colour or reorder
// text on a terminal.
func assertNoControl(t *testing.T, what, text string) {
	t.Helper()
	for _, c := range text {
		if c != '\n' && (unicode.IsControl(c) || unicode.Is(unicode.Cf, c)) {
			t.Errorf("%s holds the raw control character %U:\n%q", what, c, redact(text))
			return
		}
	}
}

// runKubectl runs the kubectl at path with args, its own HOME (so it reads
// and writes nothing in the real ~/.kube) and extraEnv in place of any
// KUBECONFIG or BROKERCRED_* of this process.
func runKubectl(t *testing.T, path string, extraEnv []string, args ...string) testkit.Result {
	t.Helper()
	return testkit.Run(t, testkit.Env(t, extraEnv...), path, args...)
}
