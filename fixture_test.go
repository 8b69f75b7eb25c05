package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// binary is the brokercred executable built once by TestMain; every test in
// this package runs it as a real process, the way kubectl and Argo CD do.
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

// processTimeout bounds one process a test starts, so that a hang fails the
// test instead of stalling the run.
const processTimeout = time.Minute

// result is what one process left behind.
type result struct {
	code           int
	stdout, stderr string
}

// execute runs argv[0] with the rest as arguments, exactly env, and as attr
// says (nil: as this process's user), within processTimeout. An exit status
// is a result; only failing to run at all is an error.
func execute(env []string, attr *syscall.SysProcAttr, argv []string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = attr
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return result{}, err
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}, nil
}

// childEnv is this process's environment without anything that configures
// brokercred or claims to come from client-go, with the default cache dir
// moved into a temp dir so no test writes to the real ~/.cache.
func childEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "BROKERCRED_") || name == "KUBERNETES_EXEC_INFO" || name == "XDG_CACHE_HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "XDG_CACHE_HOME="+t.TempDir())
}

// podSubject is distinctive so that a leak of the pod token is easy to see.
const podSubject = "system:serviceaccount:argocd:needle-in-haystack"

// settings are what newFixture starts; options change them.
type settings struct {
	broker   brokertest.Options
	subject  string
	clusters []string
}

// option changes what newFixture starts.
type option func(*settings)

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
	brokerURL, caFile, tokenFile, cacheDir, target string
	extra                                          []string // more flags, after those

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
	fleet := testkit.StartFleet(t, s.broker, podToken, s.clusters...)
	fleet.Bin = binary
	return &fixture{
		Fleet:     fleet,
		brokerURL: fleet.Broker.URL,
		caFile:    fleet.Broker.CAFile(fleet.Dir),
		tokenFile: fleet.TokenFile,
		cacheDir:  filepath.Join(fleet.Dir, "cache"),
		target:    "prod-east",
		env:       childEnv(t),
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

// secrets are every token nothing may show: the pod token, all the broker
// minted, and all planted.
func (f *fixture) secrets() []string {
	return append(append([]string{f.podToken}, f.Broker.Issued()...), f.planted...)
}

// flags are the token call's flags for the fixture's settings, then extra.
func (f *fixture) flags() []string {
	var flags []string
	for _, flag := range []struct{ name, value string }{
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
func (f *fixture) execute(args ...string) (result, error) {
	argv := append(append(append([]string(nil), f.wrap...), f.Bin), args...)
	return execute(f.env, f.attr, argv)
}

// run is execute for a test: failing to start is fatal.
func (f *fixture) run(t *testing.T, args ...string) result {
	t.Helper()
	r, err := f.execute(args...)
	if err != nil {
		t.Fatalf("run brokercred: %v", err)
	}
	return r
}

// call runs the command (such as token, or token -v, or doctor) with the
// fixture's flags.
func (f *fixture) call(t *testing.T, command ...string) result {
	t.Helper()
	return f.run(t, append(command, f.flags()...)...)
}

// herd starts n token calls at once and returns their results.
func (f *fixture) herd(t *testing.T, n int) []result {
	t.Helper()
	args := append([]string{"token"}, f.flags()...)
	results := make([]result, n)
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
// path. With clusterInfo the cluster passes its name to brokercred through
// provideClusterInfo, and the fixture's target must be empty.
func (f *fixture) kubeconfig(t *testing.T, cluster string, clusterInfo bool) string {
	t.Helper()
	dir := t.TempDir()
	api := f.APIs[cluster]
	args := []string{"config", "kubeconfig", "--name", cluster, "--server", api.URL, "--server-ca-file", api.CAFile(dir), "--command", f.Bin}
	if clusterInfo {
		args = append(args, "--cluster-info")
	}
	r := f.run(t, append(args, f.flags()...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("config kubeconfig: exit code %d, stderr:\n%s", r.code, redact(r.stderr))
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// credential is the part of an ExecCredential a client reads.
type credential struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Token               string    `json:"token"`
		ExpirationTimestamp time.Time `json:"expirationTimestamp"`
	} `json:"status"`
}

// parseCredential decodes stdout: one v1 ExecCredential and nothing else.
func parseCredential(t *testing.T, stdout string) credential {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var c credential
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

// claims are the JWT claims the fake broker puts in the tokens it issues.
type claims struct {
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
}

// parseClaims decodes a JWT payload without verifying it.
func parseClaims(t *testing.T, token string) claims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d dot-separated parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("token payload: %v", err)
	}
	return c
}

// tokenLike matches a JWT, and the opaque sentinel pod token of the "pod
// token is not a JWT" case.
var tokenLike = regexp.MustCompile(`eyJ[\w-]*\.[\w-]*\.[\w-]*|OPAQUE-SENTINEL-[\w-]*`)

// redact is a process's output fit for a failure message: every token in it
// replaced by <token>, so that a failing test never prints one.
func redact(output string) string {
	return tokenLike.ReplaceAllString(output, "<token>")
}

// assertNoSecret fails when text holds any of the tokens, or any 8-character
// fragment of a JWT's signature.
func assertNoSecret(t *testing.T, what, text string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if leak := brokertest.Leak(text, tok); leak != "" {
			t.Errorf("%s holds %s", what, leak)
		}
	}
}

// assertOneErrorLine checks the shape of a failure as a user sees it.
func assertOneErrorLine(t *testing.T, r result, wantSubstr string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("exit code 0, want non-zero")
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want empty on failure", redact(r.stdout))
	}
	if !strings.HasPrefix(r.stderr, "brokercred: error: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not one line starting with %q:\n%s", "brokercred: error: ", redact(r.stderr))
	}
	if !strings.Contains(r.stderr, wantSubstr) {
		t.Errorf("stderr = %q, want it to contain %q", redact(r.stderr), wantSubstr)
	}
	assertNoControl(t, "stderr", r.stderr)
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
