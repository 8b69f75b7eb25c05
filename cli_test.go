package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// binary is the brokercred executable built once by TestMain; every test in
// this package runs it as a real process, the way kubectl and Argo CD do.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds brokercred with testkit into a temp dir, runs the
// tests and removes the binary again.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "brokercred-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "make build dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = testkit.Build(".", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// processTimeout bounds one brokercred process, so that a hang fails the test
// instead of stalling the run.
const processTimeout = time.Minute

// result is what one brokercred process left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runBinary runs brokercred with args and exactly the environment env.
func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r, err := execute(env, append([]string{binary}, args...))
	if err != nil {
		t.Fatalf("run brokercred: %v", err)
	}
	return r
}

// execute runs argv[0] with the rest as arguments and exactly env, within
// processTimeout. An exit status is a result; only failing to run at all is
// an error.
func execute(env, argv []string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return result{}, err
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}, nil
}

// runConcurrently starts n brokercred processes at once and returns their results.
func runConcurrently(t *testing.T, n int, env []string, args ...string) []result {
	t.Helper()
	results := make([]result, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = execute(env, append([]string{binary}, args...))
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("run brokercred: %v", err)
	}
	return results
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

// fixture is a fake broker and the files one pod would have to call it.
type fixture struct {
	broker    *brokertest.Server
	brokerURL string
	caFile    string
	tokenFile string
	cacheDir  string
	target    string
	podToken  string
	extra     []string // more flags
	env       []string
}

// newFixture starts a broker with opts and writes a pod token for subject.
func newFixture(t *testing.T, opts brokertest.Options, subject string) *fixture {
	t.Helper()
	b := brokertest.NewServer(opts)
	t.Cleanup(b.Close)
	dir := t.TempDir()
	f := &fixture{
		broker:    b,
		brokerURL: b.URL,
		caFile:    b.CAFile(dir),
		tokenFile: filepath.Join(dir, "token"),
		cacheDir:  filepath.Join(dir, "cache"),
		target:    "prod-east",
		env:       childEnv(t),
	}
	f.writePodToken(t, brokertest.PodToken(subject, time.Now().Add(time.Hour)))
	return f
}

// writePodToken replaces the pod token file, as the kubelet would.
func (f *fixture) writePodToken(t *testing.T, token string) {
	t.Helper()
	f.podToken = token
	if err := os.WriteFile(f.tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
}

// args are the flags of a `brokercred token` call for the fixture's settings;
// empty settings are left out.
func (f *fixture) args() []string {
	args := []string{"token"}
	for _, flag := range []struct{ name, value string }{
		{"--broker-url", f.brokerURL},
		{"--ca-file", f.caFile},
		{"--token-file", f.tokenFile},
		{"--cache-dir", f.cacheDir},
		{"--target", f.target},
	} {
		if flag.value != "" {
			args = append(args, flag.name, flag.value)
		}
	}
	return append(args, f.extra...)
}

func (f *fixture) run(t *testing.T) result {
	t.Helper()
	return runBinary(t, f.env, f.args()...)
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
		t.Fatalf("stdout is not an ExecCredential: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one ExecCredential:\n%s", stdout)
	}
	if c.APIVersion != "client.authentication.k8s.io/v1" || c.Kind != "ExecCredential" || c.Status.Token == "" || c.Status.ExpirationTimestamp.IsZero() {
		t.Fatalf("stdout is an incomplete ExecCredential:\n%s", stdout)
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
		t.Errorf("stdout = %q, want empty on failure", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "brokercred: error: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not one line starting with %q:\n%s", "brokercred: error: ", r.stderr)
	}
	if !strings.Contains(r.stderr, wantSubstr) {
		t.Errorf("stderr = %q, want it to contain %q", r.stderr, wantSubstr)
	}
}

// podSubject is distinctive so that a leak of the pod token is easy to see.
const podSubject = "system:serviceaccount:argocd:needle-in-haystack"

func TestCLIErrors(t *testing.T) {
	tests := []struct {
		name string
		opts brokertest.Options
		// prepare breaks the fixture; it returns the tokens the broker will
		// issue, which must not leak either.
		prepare       func(t *testing.T, f *fixture) (issued []string)
		wantOK        bool
		wantRequests  int
		wantErrSubstr string
	}{
		{
			name: "missing pod token file",
			prepare: func(t *testing.T, f *fixture) []string {
				f.tokenFile += ".missing"
				return nil
			},
			wantErrSubstr: "no such file; is automountServiceAccountToken off?",
		},
		{
			name: "empty pod token",
			prepare: func(t *testing.T, f *fixture) []string {
				if err := os.WriteFile(f.tokenFile, []byte(" \n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			wantErrSubstr: "is empty; check the projected ServiceAccount token volume",
		},
		{
			name: "expired pod token",
			prepare: func(t *testing.T, f *fixture) []string {
				f.writePodToken(t, brokertest.PodToken(podSubject, time.Now().Add(-time.Hour)))
				return nil
			},
			wantErrSubstr: "expired at",
		},
		{
			name: "http broker URL without --insecure-http",
			prepare: func(t *testing.T, f *fixture) []string {
				f.brokerURL = strings.Replace(f.brokerURL, "https://", "http://", 1)
				return nil
			},
			wantErrSubstr: "is plain http and would expose the pod token",
		},
		{
			name: "unknown apiVersion in KUBERNETES_EXEC_INFO",
			prepare: func(t *testing.T, f *fixture) []string {
				f.env = append(f.env, `KUBERNETES_EXEC_INFO={"apiVersion":"client.authentication.k8s.io/v1alpha1","kind":"ExecCredential","spec":{}}`)
				return nil
			},
			wantErrSubstr: `asks for apiVersion "client.authentication.k8s.io/v1alpha1"`,
		},
		{
			name: "malformed KUBERNETES_EXEC_INFO",
			prepare: func(t *testing.T, f *fixture) []string {
				f.env = append(f.env, `KUBERNETES_EXEC_INFO={"apiVersion":`)
				return nil
			},
			wantErrSubstr: "KUBERNETES_EXEC_INFO is not valid JSON",
		},
		{
			name: "missing --target",
			prepare: func(t *testing.T, f *fixture) []string {
				f.target = ""
				return nil
			},
			wantErrSubstr: "no target cluster; set --target",
		},
		{
			name: "broker refuses the subject (403)",
			opts: brokertest.Options{Allow: []string{"system:serviceaccount:argocd:someone-else"}},
			prepare: func(t *testing.T, f *fixture) []string {
				return nil
			},
			wantRequests:  1,
			wantErrSubstr: "broker refused the identity " + podSubject + " for target prod-east (HTTP 403)",
		},
		{
			name: "wrong broker path (404)",
			prepare: func(t *testing.T, f *fixture) []string {
				f.brokerURL = strings.TrimSuffix(f.brokerURL, brokertest.Path) + "/api/get-token"
				return nil
			},
			wantErrSubstr: "has no such endpoint (HTTP 404)",
		},
		{
			name: "HTML login page with 200",
			prepare: func(t *testing.T, f *fixture) []string {
				f.broker.Queue(brokertest.Response{
					Status: 200,
					Header: map[string]string{"Content-Type": "text/html; charset=utf-8"},
					Body:   "<html><body>Sign in, secret-page-marker</body></html>",
				})
				return []string{"secret-page-marker"}
			},
			wantRequests:  1,
			wantErrSubstr: "answered with an HTML page, not a token",
		},
		{
			name: "empty body",
			prepare: func(t *testing.T, f *fixture) []string {
				f.broker.Queue(brokertest.Response{Status: 200, Header: map[string]string{"Content-Type": "text/plain"}})
				return nil
			},
			wantRequests:  1,
			wantErrSubstr: "answered with an empty body",
		},
		{
			name: "503 three times then a token",
			prepare: func(t *testing.T, f *fixture) []string {
				unavailable := brokertest.Response{Status: 503, Body: "busy"}
				f.broker.Queue(unavailable, unavailable, unavailable)
				return nil
			},
			wantOK:       true,
			wantRequests: 4,
		},
		{
			name: "broker CA not trusted",
			prepare: func(t *testing.T, f *fixture) []string {
				f.caFile = ""
				return nil
			},
			wantErrSubstr: "certificate from an unknown authority; set --ca-file",
		},
		{
			name: "broker issues an expired token",
			prepare: func(t *testing.T, f *fixture) []string {
				tok := f.broker.Issue("prod-east", podSubject, time.Now().Add(-time.Minute))
				f.broker.Queue(brokertest.Response{Status: 200, Header: map[string]string{"Content-Type": "text/plain"}, Body: tok})
				return []string{tok}
			},
			wantRequests:  1,
			wantErrSubstr: "broker issued a token for target prod-east that expired at",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts, podSubject)
			issued := tc.prepare(t, f)

			r := f.run(t)

			assertNoSecret(t, "stderr", r.stderr, append(issued, f.podToken)...)
			assertNoSecret(t, "stdout", r.stdout, f.podToken)
			if got := len(f.broker.Requests()); got != tc.wantRequests {
				t.Errorf("broker got %d requests, want %d", got, tc.wantRequests)
			}
			if !tc.wantOK {
				assertOneErrorLine(t, r, tc.wantErrSubstr)
				assertNoSecret(t, "stdout", r.stdout, issued...)
				return
			}
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit code %d, stderr:\n%s", r.code, r.stderr)
			}
			cred := parseCredential(t, r.stdout)
			assertNoSecret(t, "stderr", r.stderr, cred.Status.Token)
			if c := parseClaims(t, cred.Status.Token); c.Sub != podSubject || c.Aud != f.target {
				t.Errorf("issued token is for %s at %s, want %s at %s", c.Sub, c.Aud, podSubject, f.target)
			}
		})
	}
}

// herdSize is how many processes start at once, as when Argo CD refreshes
// many applications on one remote cluster.
const herdSize = 50

func TestCacheHerdMakesOneBrokerRequest(t *testing.T) {
	f := newFixture(t, brokertest.Options{Latency: 300 * time.Millisecond}, podSubject)

	first := assertHerdShares(t, f, herdSize)
	if got := len(f.broker.Requests()); got != 1 {
		t.Fatalf("first herd: broker got %d requests, want 1", got)
	}

	second := assertHerdShares(t, f, herdSize)
	if got := len(f.broker.Requests()); got != 1 {
		t.Fatalf("second herd: broker got %d requests, want still 1", got)
	}
	if first != second {
		t.Errorf("second herd got another credential than the first:\n%s\n%s", first, second)
	}
}

func TestCacheRefetchesOnceAfterExpiry(t *testing.T) {
	f := newFixture(t, brokertest.Options{Latency: 300 * time.Millisecond, TTL: 5 * time.Second}, podSubject)
	f.extra = []string{"--refresh-margin", "1s"}

	r := f.run(t)
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", r.code, r.stderr)
	}
	old := parseCredential(t, r.stdout)
	oldExp := time.Unix(parseClaims(t, old.Status.Token).Exp, 0)
	if !old.Status.ExpirationTimestamp.Before(oldExp) {
		t.Errorf("expirationTimestamp %s is not before the token's exp %s: no refresh margin", old.Status.ExpirationTimestamp, oldExp)
	}

	// Wait, without asserting any timing, until the time client-go was told
	// has passed: the cached token still lives, but only within the margin.
	for !time.Now().After(old.Status.ExpirationTimestamp) {
		time.Sleep(50 * time.Millisecond)
	}

	renewed := assertHerdShares(t, f, 10)
	if got := len(f.broker.Requests()); got != 2 {
		t.Fatalf("after expiry: broker got %d requests in all, want 2", got)
	}
	if cred := parseCredential(t, renewed); cred.Status.Token == old.Status.Token {
		t.Errorf("after expiry the old token was served again")
	}
}

// assertHerdShares runs n processes at once, checks they all printed the same
// credential, and returns it.
func assertHerdShares(t *testing.T, f *fixture, n int) string {
	t.Helper()
	results := runConcurrently(t, n, f.env, f.args()...)
	for i, r := range results {
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("process %d: exit code %d, stderr:\n%s", i, r.code, r.stderr)
		}
		if r.stdout != results[0].stdout {
			t.Fatalf("process %d printed another credential than process 0:\n%s\n%s", i, r.stdout, results[0].stdout)
		}
	}
	parseCredential(t, results[0].stdout)
	return results[0].stdout
}

func TestCacheSurvivesCrashMidWrite(t *testing.T) {
	f := newFixture(t, brokertest.Options{}, podSubject)
	if r := f.run(t); r.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", r.code, r.stderr)
	}
	entries, err := filepath.Glob(filepath.Join(f.cacheDir, "*.json"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("cache holds entries %v (%v), want exactly one", entries, err)
	}
	data, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(entries[0], int64(len(data)/2)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.cacheDir, ".tmp-4242"), data[:len(data)/3], 0o600); err != nil {
		t.Fatal(err)
	}

	r := f.run(t)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("after a crash mid-write: exit code %d, stderr:\n%s", r.code, r.stderr)
	}
	cred := parseCredential(t, r.stdout)
	if got := len(f.broker.Requests()); got != 2 {
		t.Errorf("broker got %d requests, want 2: the truncated entry must not be served", got)
	}

	again := f.run(t)
	if again.code != 0 || parseCredential(t, again.stdout).Status.Token != cred.Status.Token {
		t.Errorf("the call after the repair did not reuse the repaired entry: exit code %d, stderr:\n%s", again.code, again.stderr)
	}
	if got := len(f.broker.Requests()); got != 2 {
		t.Errorf("broker got %d requests, want still 2 after the entry was rewritten", got)
	}
}

func TestCacheKeepsIdentitiesApart(t *testing.T) {
	const subA, subB = "system:serviceaccount:team-a:deployer", "system:serviceaccount:team-b:deployer"
	f := newFixture(t, brokertest.Options{}, subA)
	tokenB := brokertest.PodToken(subB, time.Now().Add(time.Hour))
	fileB := filepath.Join(t.TempDir(), "token-b")
	if err := os.WriteFile(fileB, []byte(tokenB), 0o600); err != nil {
		t.Fatal(err)
	}
	fileA := f.tokenFile

	tokens := map[string]string{}
	for round := range 2 {
		for _, id := range []struct{ sub, file string }{{subA, fileA}, {subB, fileB}} {
			f.tokenFile = id.file
			r := f.run(t)
			if r.code != 0 {
				t.Fatalf("round %d, %s: exit code %d, stderr:\n%s", round, id.sub, r.code, r.stderr)
			}
			tok := parseCredential(t, r.stdout).Status.Token
			if got := parseClaims(t, tok).Sub; got != id.sub {
				t.Errorf("round %d: process with pod token for %s got a token for %s", round, id.sub, got)
			}
			if prev, ok := tokens[id.sub]; ok && prev != tok {
				t.Errorf("round %d: %s got a new token instead of its cached one", round, id.sub)
			}
			tokens[id.sub] = tok
		}
	}
	reqs := f.broker.Requests()
	if len(reqs) != 2 || reqs[0].Subject != subA || reqs[1].Subject != subB {
		t.Errorf("broker requests = %+v, want one for %s then one for %s", reqs, subA, subB)
	}
}

func TestCacheDirUnwritable(t *testing.T) {
	f := newFixture(t, brokertest.Options{}, podSubject)
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.cacheDir = filepath.Join(file, "sub")

	for i := 1; i <= 2; i++ {
		r := f.run(t)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("call %d: exit code %d, stderr:\n%s", i, r.code, r.stderr)
		}
		parseCredential(t, r.stdout)
		if got := len(f.broker.Requests()); got != i {
			t.Errorf("after call %d the broker got %d requests, want %d (no cache to serve from)", i, got, i)
		}
	}
}

func TestCacheListAndClear(t *testing.T) {
	f := newFixture(t, brokertest.Options{}, podSubject)
	var issued []string
	for _, target := range []string{"prod-east", "staging"} {
		f.target = target
		r := f.run(t)
		if r.code != 0 {
			t.Fatalf("%s: exit code %d, stderr:\n%s", target, r.code, r.stderr)
		}
		issued = append(issued, parseCredential(t, r.stdout).Status.Token)
	}
	list := func() string {
		t.Helper()
		r := runBinary(t, f.env, "cache", "list", "--cache-dir", f.cacheDir)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("cache list: exit code %d, stderr:\n%s", r.code, r.stderr)
		}
		assertNoSecret(t, "cache list", r.stdout, append(issued, f.podToken)...)
		return r.stdout
	}

	out := list()
	for _, want := range []string{"prod-east", "staging", podSubject} {
		if !strings.Contains(out, want) {
			t.Errorf("cache list does not show %q:\n%s", want, out)
		}
	}

	r := runBinary(t, f.env, "cache", "clear", "--cache-dir", f.cacheDir, "--target", "prod-east")
	if r.code != 0 || r.stderr != "removed 1 cache entries\n" {
		t.Fatalf("cache clear --target prod-east: exit code %d, stderr:\n%s", r.code, r.stderr)
	}
	out = list()
	if strings.Contains(out, "prod-east") || !strings.Contains(out, "staging") {
		t.Errorf("after clearing prod-east, cache list shows:\n%s", out)
	}

	f.target = "prod-east"
	if r := f.run(t); r.code != 0 {
		t.Fatalf("exit code %d after clear, stderr:\n%s", r.code, r.stderr)
	}
	if got := len(f.broker.Requests()); got != 3 {
		t.Errorf("broker got %d requests, want 3: the cleared target must be fetched again", got)
	}
}
