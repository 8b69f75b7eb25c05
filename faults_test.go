//go:build unix

package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// faultCase is one thing that goes wrong around a `brokercred token` call:
// at the broker, at the caller, or in the cache (issue 8 lists them). The
// call runs as a user runs it: a process with the fixture's flags, args and
// env, and the test looks at its exit code, its stderr line, its stdout and
// the files it left in the cache.
type faultCase struct {
	name string
	opts brokertest.Options // the broker's
	// unprivileged runs the brokercred processes of the case as a user
	// whom file modes bind: nobody when the tests run as root (as CI does),
	// else this process's user.
	unprivileged bool
	// setup injects the fault into f; nil injects none beyond args and env.
	// It may prime the cache first (those broker requests count in
	// wantRequests).
	setup func(t *testing.T, f *fixture)
	args  []string // flags after the fixture's, added after setup
	env   []string // environment added after setup

	// wantExit is the exit code. Zero means the call must print a correct
	// credential on stdout and nothing on stderr; otherwise it must print
	// nothing on stdout and one stderr line holding wantStderr.
	wantExit   int
	wantStderr string
	// wantRequests is how many requests the broker gets, priming included.
	wantRequests int
	// uncached says a successful call could not cache its token: it leaves
	// no cache entry, and the healthy call after it asks the broker again.
	// A failed call always leaves none.
	uncached bool
	// check looks further at a successful call's credential.
	check func(t *testing.T, f *fixture, start, end time.Time, cred credential)
	// then runs a further command last, after the healthy call, with the
	// healed fixture on the cache both calls left (cache clear, cache list).
	then func(t *testing.T, f *fixture)
}

// arrange starts a fixture with the case's fault injected, and returns it
// with a copy of the fixture as it was before the fault.
func (tc faultCase) arrange(t *testing.T) (f *fixture, healthy fixture) {
	t.Helper()
	f = newFixture(t, withBroker(tc.opts))
	if tc.unprivileged && os.Geteuid() == 0 {
		f.runAsNobody(t)
	}
	healthy = *f
	if tc.setup != nil {
		tc.setup(t, f)
	}
	f.extra = append(f.extra, tc.args...)
	f.env = append(f.env, tc.env...)
	return f, healthy
}

// healed undoes the fault of f: it runs f's heal functions and returns the
// healthy fixture with what the faulty call left behind, its cache dir and
// every secret, and the pod token its token file holds now.
func healed(t *testing.T, f *fixture, healthy fixture) *fixture {
	t.Helper()
	for _, h := range f.heal {
		h()
	}
	healthy.cacheDir = f.cacheDir
	healthy.planted = append(f.planted, f.podToken)
	healthy.podToken = string(mustRead(t, healthy.tokenFile))
	return &healthy
}

// nobody is the uid and gid of the unprivileged user.
const nobody = 65534

// runAsNobody makes f run brokercred as nobody, with the pod token, the
// broker CA and the cache in a dir nobody owns. The dir is not a t.TempDir,
// which sits in a dir that only root may enter.
func (f *fixture) runAsNobody(t *testing.T) {
	t.Helper()
	dir, err := os.MkdirTemp("", "brokercred-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f.tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(f.tokenFile, []byte(f.podToken), 0o600); err != nil {
		t.Fatal(err)
	}
	f.caFile = f.Broker.CAFile(dir)
	f.cacheDir = filepath.Join(dir, "cache")
	for _, path := range []string{dir, f.tokenFile, f.caFile} {
		if err := os.Chown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	f.attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
}

// prime makes one successful call so the cache holds an entry, and returns
// its path.
func (f *fixture) prime(t *testing.T) string {
	t.Helper()
	if r := f.call(t, "token"); r.Code != 0 {
		t.Fatalf("priming the cache: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
	}
	entries := cacheEntries(t, f)
	if len(entries) != 1 {
		t.Fatalf("cache holds entries %v, want exactly one", entries)
	}
	return entries[0]
}

// cacheEntries are the paths of the entries in f's cache dir: the regular
// files named like entries (entryFiles) that the user brokercred runs as
// owns. What another user planted, or a FIFO or link, is none of
// brokercred's.
func cacheEntries(t *testing.T, f *fixture) []string {
	t.Helper()
	paths := entryFiles(t, f.cacheDir)
	uid := uint32(os.Geteuid())
	if f.attr != nil && f.attr.Credential != nil {
		uid = f.attr.Credential.Uid
	}
	var entries []string
	for _, path := range paths {
		info, err := os.Lstat(path)
		if err == nil && info.Mode().IsRegular() && info.Sys().(*syscall.Stat_t).Uid == uid {
			entries = append(entries, path)
		}
	}
	return entries
}

// plantPoison rewrites the cached entry at path to hold a token the broker
// really issued for this target and subject, valid for an hour, after edit
// has changed the entry's fields. The entry is untrustworthy, so the token
// must never be served, although it would work.
func (f *fixture) plantPoison(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(mustRead(t, path), &e); err != nil {
		t.Fatal(err)
	}
	poison := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
	f.planted = append(f.planted, poison)
	e["token"] = poison
	if edit != nil {
		edit(e)
	}
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeTokenFile writes token into a new file and points the fixture's
// --token-file at it, leaving the healthy pod token file as it was.
func (f *fixture) writeTokenFile(t *testing.T, token string) {
	t.Helper()
	f.tokenFile = filepath.Join(t.TempDir(), "token")
	f.writePodToken(t, token)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// holdLock takes an exclusive flock on path and hands it to a `sleep`
// child, then drops this process's own descriptor: only the child holds the
// lock, as a brokercred process stuck or killed under the lock would.
func holdLock(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("take lock: %v", err)
	}
	cmd := exec.Command("sleep", "600")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lock holder: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// lockHeld reports whether someone holds an exclusive flock on path.
func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true
	}
	if err != nil {
		t.Fatalf("probe lock: %v", err)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Canned faults; once the queue is empty the broker answers with a real token.
var (
	status500 = brokertest.Response{Status: 500, Body: "internal error"}
	status502 = brokertest.Response{Status: 502, Body: "bad gateway"}
	reset     = brokertest.Response{Reset: true}
)

func faultCases() []faultCase {
	return append(append(append(servedRecordFaults(), echoFaults()...), readLimitFaults()...), []faultCase{
		// Broker faults.
		{
			name: "connection refused",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = "https://" + closedPort(t) + brokertest.Path
			},
			wantExit:   1,
			wantStderr: "connection refused; check the URL, DNS and network policy",
		},
		{
			name: "DNS failure",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = "https://broker.brokercred.invalid" + brokertest.Path
			},
			wantExit:   1,
			wantStderr: "reach broker broker.brokercred.invalid: dial tcp: lookup broker.brokercred.invalid",
		},
		{
			name: "TLS certificate for another host name",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = strings.Replace(f.brokerURL, "127.0.0.1", "localhost", 1)
			},
			wantExit:   1,
			wantStderr: "presented a certificate for another host name; fix --broker-url",
		},
		{
			name: "TLS certificate expired",
			setup: func(t *testing.T, f *fixture) {
				expired := brokertest.NewServer(brokertest.Options{ExpiredCert: true})
				t.Cleanup(expired.Close)
				f.brokerURL, f.caFile = expired.URL, expired.CAFile(t.TempDir())
			},
			wantExit:   1,
			wantStderr: "presented an invalid certificate (expired or not yet valid); renew the broker's certificate or fix the clock",
		},
		{
			name: "hanging broker",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Hang: true})
			},
			args:         []string{"--timeout", "1s"},
			wantExit:     1,
			wantStderr:   "did not answer in time; check it is up and reachable, or raise --timeout",
			wantRequests: 1,
		},
		{
			name: "slow body",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.Broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "text/plain"}, Body: tok, Trickle: 100 * time.Millisecond})
			},
			args:         []string{"--timeout", "1s"},
			wantExit:     1,
			wantStderr:   "did not finish its answer in time",
			wantRequests: 1,
		},
		{
			name: "connection reset once, then a token",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(reset)
			},
			wantRequests: 2,
		},
		{
			name: "connection reset on every try",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(reset, reset, reset, reset, reset)
			},
			wantExit:     1,
			wantStderr:   "connection reset by peer; check the URL, DNS and network policy",
			wantRequests: 5,
		},
		{
			name: "500 and 502, then a token",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(status500, status502)
			},
			wantRequests: 3,
		},
		{
			name: "429 with Retry-After inside --timeout",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Status: 429, Header: map[string]string{"Retry-After": "1"}})
			},
			args:         []string{"--timeout", "10s"},
			wantRequests: 2,
		},
		{
			name: "429 with Retry-After beyond --timeout",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Status: 429, Header: map[string]string{"Retry-After": "3600"}})
			},
			args:         []string{"--timeout", "3s"},
			wantExit:     1,
			wantStderr:   "is rate limiting (HTTP 429) and did not recover within --timeout",
			wantRequests: 1,
		},
		{
			name: "401 is not retried and names the subject",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Status: 401, Body: "token rejected"})
			},
			wantExit:     1,
			wantStderr:   "broker refused the identity \"" + podSubject + "\" for target \"prod-east\" (HTTP 401)",
			wantRequests: 1,
		},
		{
			name: "malformed JSON",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.Broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "application/json"}, Body: `{"token": "` + tok})
			},
			wantExit:     1,
			wantStderr:   "answered with malformed JSON (syntax error at byte",
			wantRequests: 1,
		},
		{
			name: "endless body",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.Broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "text/plain"}, Body: strings.Repeat(tok, 64), Endless: true})
			},
			wantExit:     1,
			wantStderr:   "answered with a body larger than 256 KiB, which is no token; check --broker-url",
			wantRequests: 1,
		},
		{
			name:         "token without exp uses --default-ttl",
			opts:         brokertest.Options{NoExp: true},
			args:         []string{"--default-ttl", "90s"},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, start, end time.Time, cred credential) {
				// 90s lifetime, reported the default 10s refresh margin early.
				lo, hi := start.Add(80*time.Second).Truncate(time.Second), end.Add(80*time.Second)
				if got := cred.Status.ExpirationTimestamp; got.Before(lo) || got.After(hi) {
					t.Errorf("expirationTimestamp is %v after the call, want about 80s (90s --default-ttl less the 10s margin)", got.Sub(end))
				}
			},
		},

		{
			name: "broker refuses the subject (403)",
			opts: brokertest.Options{Allow: []string{podSubject}},
			setup: func(t *testing.T, f *fixture) {
				f.writeTokenFile(t, sentinelPodToken(refusedSubject))
			},
			wantExit:     1,
			wantStderr:   "broker refused the identity \"" + refusedSubject + "\" for target \"prod-east\" (HTTP 403)",
			wantRequests: 1,
		},
		{
			name: "wrong broker path (404)",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = strings.TrimSuffix(f.brokerURL, brokertest.Path) + "/api/get-token"
			},
			wantExit:   1,
			wantStderr: "has no such endpoint (HTTP 404)",
		},
		{
			name: "HTML login page with 200",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{
					Status: 200,
					Header: map[string]string{"Content-Type": "text/html; charset=utf-8"},
					Body:   "<html><body>Sign in, secret-page-marker</body></html>",
				})
				f.planted = append(f.planted, "secret-page-marker")
			},
			wantExit:     1,
			wantStderr:   "answered with an HTML page, not a token",
			wantRequests: 1,
		},
		{
			name: "empty body",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Status: 200, Header: map[string]string{"Content-Type": "text/plain"}})
			},
			wantExit:     1,
			wantStderr:   "answered with an empty body",
			wantRequests: 1,
		},
		{
			name: "503 three times then a token",
			setup: func(t *testing.T, f *fixture) {
				unavailable := brokertest.Response{Status: 503, Body: "busy"}
				f.Broker.Queue(unavailable, unavailable, unavailable)
			},
			wantRequests: 4,
		},
		{
			name:       "broker CA not trusted",
			setup:      func(t *testing.T, f *fixture) { f.caFile = "" },
			wantExit:   1,
			wantStderr: "certificate from an unknown authority; set --ca-file",
		},
		{
			name: "broker issues an expired token",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue("prod-east", podSubject, time.Now().Add(-time.Minute))
				f.Broker.Queue(brokertest.Response{Status: 200, Header: map[string]string{"Content-Type": "text/plain"}, Body: tok})
			},
			wantExit:     1,
			wantStderr:   "broker issued a token for target \"prod-east\" that expired at",
			wantRequests: 1,
		},
		{
			name: "broker echoes the pod token as its answer",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "text/plain"}, Body: f.podToken})
			},
			wantExit:     1,
			wantStderr:   "sent back the pod token itself instead of a token for target \"prod-east\"; --broker-url points at an endpoint that echoes its request: fix --broker-url",
			wantRequests: 1,
		},
		{
			name: "broker echoes the pod token in JSON",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(jsonAnswer(f.podToken, "2099-01-01T00:00:00Z"))
			},
			wantExit:     1,
			wantStderr:   "sent back the pod token itself instead of a token for target \"prod-east\"",
			wantRequests: 1,
		},
		{
			name: "redirect to a host made of a piece of the pod token",
			setup: func(t *testing.T, f *fixture) {
				random := strings.TrimPrefix(f.podToken[strings.LastIndex(f.podToken, ".")+1:], "POD-SENTINEL-")
				f.redirectTo(t, "https://"+random[:24]+".example.com/")
			},
			wantExit:   1,
			wantStderr: `redirected (HTTP 302) to "https://[redacted].example.com"; set --broker-url to the final https URL`,
		},
		{
			name: "redirect with the whole pod token in its path",
			setup: func(t *testing.T, f *fixture) {
				// Too long for a host name (63 bytes a label), so in the path
				// and query instead.
				f.redirectTo(t, "https://broker.example.com/"+f.podToken+"?token="+f.podToken)
			},
			wantExit:   1,
			wantStderr: `redirected (HTTP 302) to "https://broker.example.com"; set --broker-url to the final https URL`,
		},
		{
			name: "stated expiry far beyond the token's exp",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Minute))
				f.Broker.Queue(jsonAnswer(tok, "2099-01-01T00:00:00Z"))
			},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, _, _ time.Time, cred credential) {
				exp := tokenClaims(t, cred.Status.Token).Expiry
				if got, limit := cred.Status.ExpirationTimestamp, exp.Add(-10*time.Second); got.After(limit) {
					t.Errorf("expirationTimestamp %v is after the token's exp %v less the 10s margin", got, exp)
				}
				if got := entryExpiry(t, f); !got.Equal(exp) {
					t.Errorf("cache entry expires %v, want the token's exp %v", got, exp)
				}
			},
		},
		{
			name: "stated lifetime beyond --max-ttl",
			opts: brokertest.Options{NoExp: true},
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Time{})
				f.Broker.Queue(jsonAnswer(tok, "2099-01-01T00:00:00Z"))
			},
			args:         []string{"--max-ttl", "1h"},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, start, end time.Time, cred credential) {
				// Capped at an hour, reported the default 10s margin early.
				lo, hi := start.Add(time.Hour-10*time.Second).Truncate(time.Second), end.Add(time.Hour-10*time.Second)
				if got := cred.Status.ExpirationTimestamp; got.Before(lo) || got.After(hi) {
					t.Errorf("expirationTimestamp is %v after the call, want about 59m50s (--max-ttl 1h less the 10s margin)", got.Sub(end))
				}
				if got := entryExpiry(t, f); got.Before(start.Add(time.Hour)) || got.After(end.Add(time.Hour)) {
					t.Errorf("cache entry expires %v after the call, want about 1h (--max-ttl)", got.Sub(end))
				}
			},
		},

		// Caller faults.
		{
			name:       "missing pod token file",
			setup:      func(t *testing.T, f *fixture) { f.tokenFile += ".missing" },
			wantExit:   1,
			wantStderr: "no such file; is automountServiceAccountToken off?",
		},
		{
			name: "empty pod token",
			setup: func(t *testing.T, f *fixture) {
				f.tokenFile = filepath.Join(t.TempDir(), "token")
				if err := os.WriteFile(f.tokenFile, []byte(" \n"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantExit:   1,
			wantStderr: "is empty; check the projected ServiceAccount token volume",
		},
		{
			name: "expired pod token",
			setup: func(t *testing.T, f *fixture) {
				f.writeTokenFile(t, brokertest.PodToken(podSubject, time.Now().Add(-time.Hour)))
			},
			wantExit:   1,
			wantStderr: "expired at",
		},
		{
			name: "http broker URL without --insecure-http",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = strings.Replace(f.brokerURL, "https://", "http://", 1)
			},
			wantExit:   1,
			wantStderr: "is plain http and would expose the pod token",
		},
		{
			name:       "unknown apiVersion in KUBERNETES_EXEC_INFO",
			env:        []string{`KUBERNETES_EXEC_INFO={"apiVersion":"client.authentication.k8s.io/v1alpha1","kind":"ExecCredential","spec":{}}`},
			wantExit:   1,
			wantStderr: `asks for apiVersion "client.authentication.k8s.io/v1alpha1"`,
		},
		{
			name:       "malformed KUBERNETES_EXEC_INFO",
			env:        []string{`KUBERNETES_EXEC_INFO={"apiVersion":`},
			wantExit:   1,
			wantStderr: "KUBERNETES_EXEC_INFO is not valid JSON",
		},
		{
			name:       "missing --target",
			setup:      func(t *testing.T, f *fixture) { f.target = "" },
			wantExit:   1,
			wantStderr: "no target cluster; set --target",
		},
		{
			name: "pod token is not a JWT",
			setup: func(t *testing.T, f *fixture) {
				f.writePodToken(t, "OPAQUE-SENTINEL-"+randomB64(48))
			},
			wantRequests: 1,
		},
		{
			name:         "pod token unreadable",
			unprivileged: true,
			setup: func(t *testing.T, f *fixture) {
				if err := os.Chmod(f.tokenFile, 0); err != nil {
					t.Fatal(err)
				}
				f.heal = append(f.heal, func() { _ = os.Chmod(f.tokenFile, 0o600) })
			},
			wantExit:   1,
			wantStderr: "permission denied; run as a user that can read it (fsGroup) or set --token-file",
		},
		{
			name:       "bad flag value",
			args:       []string{"--timeout", "soon"},
			wantExit:   80, // kong's usage error
			wantStderr: `--timeout: expected duration but got "soon"`,
		},
		{
			name:       "misspelt flag",
			args:       []string{"--refresh-margn", "5s"},
			wantExit:   80, // kong's usage error
			wantStderr: `unknown flag --refresh-margn, did you mean "--refresh-margin"?`,
		},
		{
			name:       "unknown protocol",
			args:       []string{"--protocol", "soap"},
			wantExit:   80, // kong's usage error
			wantStderr: `--protocol must be one of "get-target-token","get","token-exchange"`,
		},
		{
			name:       "unknown protocol from env",
			env:        []string{"BROKERCRED_PROTOCOL=soap"},
			wantExit:   80, // kong's usage error
			wantStderr: `--protocol must be one of "get-target-token","get","token-exchange"`,
		},
		badTarget("target with a newline", "prod\neast", false),
		badTarget("target with a terminal escape", "prod-\x1b[31meast", false),
		badTarget("cluster name with a NUL", "prod\x00east", true),
		badTarget("cluster name with a newline", "prod\neast", true),
		badTarget("cluster name with a right-to-left override", "prod\u202eeast", true),
		{
			name: "--insecure-http to a host that is not loopback",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL, f.caFile = "http://ou.example.com"+brokertest.Path, ""
			},
			args:       []string{"--insecure-http"},
			wantExit:   1,
			wantStderr: `--insecure-http allows only a loopback broker, not "ou.example.com"; use https for any other host`,
		},
		{
			name: "--insecure-http to loopback goes direct, never through HTTP_PROXY",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL, f.caFile = f.plainFront(t), ""
				f.env = append(f.env, proxyEverything(t)...)
			},
			// --no-cache: the healthy call after asks the https broker,
			// which is another cache key.
			args:         []string{"--insecure-http", "--no-cache"},
			wantRequests: 1,
			uncached:     true,
		},
		{
			name:       "--allowed-targets pins the target to another server",
			setup:      func(t *testing.T, f *fixture) { f.target = "" },
			args:       []string{"--allowed-targets", "prod-*=https://right.example:6443"},
			env:        []string{execInfo("https://evil.example:6443", `{"clusterName":"prod-east"}`)},
			wantExit:   1,
			wantStderr: `target "prod-east" is pinned to "https://right.example:6443" by --allowed-targets, not "https://evil.example:6443"; fix the cluster's server or the pin`,
		},
		{
			name: "--allowed-targets pin holds the cluster's server",
			// --target stays, agreeing with clusterName. --no-cache: the
			// healthy call after names no server, which is another cache
			// key.
			args:         []string{"--allowed-targets", "prod-*=https://right.example:6443", "--no-cache"},
			env:          []string{execInfo("https://right.example:6443", `{"clusterName":"prod-east"}`)},
			wantRequests: 1,
			uncached:     true,
		},
		{
			name: "client-go asks again for a fresh token: it was refused",
			setup: func(t *testing.T, f *fixture) {
				f.env = append(f.env, execInfo("", ""))
				f.prime(t)
				f.planted = append(f.planted, f.Broker.Issued()[0]) // refused: never served again
			},
			wantRequests: 2,
			check: func(t *testing.T, f *fixture, _, _ time.Time, cred credential) {
				// Asked again within 10 s of the forced refresh: the same
				// token, and no third request.
				r := f.call(t, "token")
				if r.Code != 0 || r.Stderr != "" {
					t.Fatalf("third call: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
				}
				if parseCredential(t, r.Stdout).Status.Token != cred.Status.Token {
					t.Errorf("third call within the 10 s window got another token than the forced refresh")
				}
				if got := len(f.Broker.Requests()); got != 2 {
					t.Errorf("after the third call the broker got %d requests, want still 2", got)
				}
			},
		},
		{
			name:         "a call by hand (no KUBERNETES_EXEC_INFO) asks again: served from the cache",
			setup:        func(t *testing.T, f *fixture) { f.prime(t) },
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, _, _ time.Time, cred credential) {
				if cred.Status.Token != f.Broker.Issued()[0] {
					t.Errorf("the second call got another token than the first")
				}
			},
		},

		// Cache faults.
		{
			name: "corrupt entry",
			setup: func(t *testing.T, f *fixture) {
				if err := os.WriteFile(f.prime(t), []byte("\x00\x01 not json"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "truncated entry holding a whole token",
			setup: func(t *testing.T, f *fixture) {
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				data := mustRead(t, path)
				if err := os.WriteFile(path, data[:len(data)-1], 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "entry in an older format",
			setup: func(t *testing.T, f *fixture) {
				f.plantPoison(t, f.prime(t), func(e map[string]any) { e["version"] = 0 })
			},
			wantRequests: 2,
		},
		{
			name: "entry readable by others",
			setup: func(t *testing.T, f *fixture) {
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				if err := os.Chmod(path, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "entry owned by another user",
			setup: func(t *testing.T, f *fixture) {
				if os.Geteuid() != 0 {
					t.Skip("only root can give a file to another user")
				}
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				if err := os.Chown(path, nobody, nobody); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "cache dir with missing parents",
			setup: func(t *testing.T, f *fixture) {
				f.cacheDir = filepath.Join(t.TempDir(), "home", "argocd", ".cache", "brokercred")
			},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, _, _ time.Time, _ credential) {
				info, err := os.Stat(f.cacheDir)
				if err != nil || info.Mode().Perm() != 0o700 {
					t.Errorf("cache dir: %v, %v; want mode 0700", info.Mode(), err)
				}
			},
		},
		{
			name: "lock held by a killed process",
			setup: func(t *testing.T, f *fixture) {
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				lock := strings.TrimSuffix(entry, ".json") + ".lock"
				holder := holdLock(t, lock)
				if !lockHeld(t, lock) {
					t.Fatal("the sleep child does not hold the lock")
				}
				if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = holder.Wait()
			},
			wantRequests: 2,
		},
		{
			name: "lock held by a stuck process",
			setup: func(t *testing.T, f *fixture) {
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				lock := strings.TrimSuffix(entry, ".json") + ".lock"
				holder := holdLock(t, lock)
				f.heal = append(f.heal, func() { _ = holder.Process.Kill(); _ = holder.Wait() })
			},
			args:         []string{"--timeout", "2s"},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "disk full",
			setup: func(t *testing.T, f *fixture) {
				// RLIMIT_FSIZE 0: every write that grows a file fails with
				// EFBIG (Go ignores SIGXFSZ), as on a full disk.
				f.wrap = []string{"/bin/sh", "-c", `ulimit -f 0 && exec "$0" "$@"`}
			},
			wantRequests: 1,
			uncached:     true,
		},
		{
			name:         "cache dir read-only",
			unprivileged: true,
			setup: func(t *testing.T, f *fixture) {
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				private := filepath.Dir(entry) // the user's own subdirectory
				if err := os.Chmod(private, 0o500); err != nil {
					t.Fatal(err)
				}
				f.heal = append(f.heal, func() { _ = os.Chmod(private, 0o700) })
			},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "FIFO as the entry in a shared cache dir",
			setup: func(t *testing.T, f *fixture) {
				f.shareCacheDir(t)
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(entry, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			args:         []string{"--timeout", "3s"},
			wantRequests: 2,
			check: func(t *testing.T, _ *fixture, start, end time.Time, _ credential) {
				if took := end.Sub(start); took >= 3*time.Second {
					t.Errorf("the call took %v, not within --timeout 3s: the FIFO held it", took)
				}
			},
		},
		{
			name: "symbolic link as the entry in a shared cache dir",
			setup: func(t *testing.T, f *fixture) {
				f.shareCacheDir(t)
				entry := f.prime(t)
				elsewhere := filepath.Join(t.TempDir(), filepath.Base(entry))
				if err := os.Rename(entry, elsewhere); err != nil {
					t.Fatal(err)
				}
				f.plantPoison(t, elsewhere, nil)
				if err := os.Symlink(elsewhere, entry); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "entry owned by another user in a shared cache dir",
			setup: func(t *testing.T, f *fixture) {
				f.shareCacheDir(t)
				entry := f.prime(t)
				f.plantPoison(t, entry, nil)
				plantAsNobody(t, entry)
			},
			wantRequests: 2,
		},
		{
			name: "private subdirectory made by another user",
			setup: func(t *testing.T, f *fixture) {
				sub, entry := f.shareAfterPriming(t)
				if err := os.Mkdir(sub, 0o700); err != nil {
					t.Fatal(err)
				}
				plantAsNobody(t, sub, moveInto(t, entry, sub))
			},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "private subdirectory open to everyone",
			setup: func(t *testing.T, f *fixture) {
				sub, entry := f.shareAfterPriming(t)
				if err := os.Mkdir(sub, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(sub, 0o777); err != nil {
					t.Fatal(err)
				}
				plantAsNobody(t, moveInto(t, entry, sub))
			},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "private subdirectory is a link to another user's dir",
			setup: func(t *testing.T, f *fixture) {
				sub, entry := f.shareAfterPriming(t)
				theirs := filepath.Join(f.cacheDir, "theirs")
				if err := os.Mkdir(theirs, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(theirs, 0o777); err != nil {
					t.Fatal(err)
				}
				planted := moveInto(t, entry, theirs)
				if err := os.Symlink(theirs, sub); err != nil {
					t.Fatal(err)
				}
				plantAsNobody(t, theirs, planted, sub)
			},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "cache dir holding files brokercred did not write",
			setup: func(t *testing.T, f *fixture) {
				entry := f.prime(t)
				for _, path := range decoys(f.cacheDir, filepath.Dir(entry)) {
					if filepath.Base(path) != foreignEntry {
						if err := os.WriteFile(path, []byte(`{"name":"not brokercred's"}`), 0o600); err != nil {
							t.Fatal(err)
						}
						continue
					}
					// Named like an entry, and one in every field, but
					// another user's.
					if err := os.WriteFile(path, mustRead(t, entry), 0o600); err != nil {
						t.Fatal(err)
					}
					f.plantPoison(t, path, func(e map[string]any) { e["name"] = strings.TrimSuffix(foreignEntry, ".json") })
					plantAsNobody(t, path)
				}
			},
			wantRequests: 1,
			then: func(t *testing.T, f *fixture) {
				entries := cacheEntries(t, f)
				if len(entries) != 1 {
					t.Fatalf("cache holds entries %v before the clear, want exactly one", entries)
				}
				r := f.run(t, "cache", "clear", "--cache-dir", f.cacheDir)
				if r.Code != 0 || r.Stderr != "removed 1 cache entries\n" {
					t.Errorf("cache clear: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
				}
				for _, path := range entries {
					if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("cache clear left brokercred's entry %s (%v)", filepath.Base(path), err)
					}
				}
				for _, path := range decoys(f.cacheDir, filepath.Dir(entries[0])) {
					if _, err := os.Lstat(path); err != nil {
						t.Errorf("cache clear removed %s, which brokercred did not write: %v", path, err)
					}
				}
			},
		},
	}...)
}

// jsonAnswer is a broker answer in the JSON shape: token, stating that it
// expires at expiry (RFC 3339).
func jsonAnswer(token, expiry string) brokertest.Response {
	return brokertest.Response{
		Header: map[string]string{"Content-Type": "application/json"},
		Body:   `{"token":"` + token + `","expirationTimestamp":"` + expiry + `"}`,
	}
}

// redirectTo points f at a broker of its own that answers the next two
// requests (doctor makes two: its probe and its token request) with a 302
// to location.
func (f *fixture) redirectTo(t *testing.T, location string) {
	t.Helper()
	other := brokertest.NewServer(brokertest.Options{})
	t.Cleanup(other.Close)
	redirect := brokertest.Response{Status: http.StatusFound, Header: map[string]string{"Location": location}}
	other.Queue(redirect, redirect)
	f.brokerURL, f.caFile = other.URL, other.CAFile(t.TempDir())
}

// entryExpiry is the expiry that f's one cache entry records.
func entryExpiry(t *testing.T, f *fixture) time.Time {
	t.Helper()
	entries := cacheEntries(t, f)
	if len(entries) != 1 {
		t.Fatalf("cache holds entries %v, want exactly one", entries)
	}
	var e struct {
		Expiry time.Time `json:"expiry"`
	}
	if err := json.Unmarshal(mustRead(t, entries[0]), &e); err != nil {
		t.Fatalf("cache entry: %v", err)
	}
	return e.Expiry
}

// execInfo is KUBERNETES_EXEC_INFO as client-go sets it for a v1 call, with
// the cluster's server and config (raw JSON) when either is given, as
// provideClusterInfo passes them.
func execInfo(server, config string) string {
	spec := map[string]any{"interactive": false}
	if server != "" || config != "" {
		cluster := map[string]any{"server": server}
		if config != "" {
			cluster["config"] = json.RawMessage(config)
		}
		spec["cluster"] = cluster
	}
	info, err := json.Marshal(map[string]any{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "spec": spec})
	if err != nil {
		panic(err)
	}
	return "KUBERNETES_EXEC_INFO=" + string(info)
}

// badTarget is a case whose target is no cluster name: set by --target, or
// with clusterInfo as the cluster's config.clusterName in
// KUBERNETES_EXEC_INFO (the only way for a NUL, which neither argv nor the
// environment can carry). The call must refuse it in one line that quotes
// it, before asking the broker; then cache list must quote an entry
// labelled with it.
func badTarget(name, target string, clusterInfo bool) faultCase {
	tc := faultCase{
		name:       name,
		setup:      func(t *testing.T, f *fixture) { f.target = target },
		wantExit:   1,
		wantStderr: "target " + strconv.Quote(target) + " is not a cluster name; use at most 253 letters, digits and . _ - : / @ +",
		then:       listsQuoted(target),
	}
	if clusterInfo {
		config, err := json.Marshal(map[string]string{"clusterName": target})
		if err != nil {
			panic(err)
		}
		tc.setup = func(t *testing.T, f *fixture) { f.target = "" }
		tc.env = []string{execInfo("https://prod-east.example:6443", string(config))}
	}
	return tc
}

// listsQuoted relabels f's one cache entry as for target, as an entry
// written before targets were checked would be, and checks that cache list
// shows the label quoted, with no raw control character.
func listsQuoted(target string) func(*testing.T, *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		entries := cacheEntries(t, f)
		if len(entries) != 1 {
			t.Fatalf("cache holds entries %v, want exactly one", entries)
		}
		var e map[string]any
		if err := json.Unmarshal(mustRead(t, entries[0]), &e); err != nil {
			t.Fatal(err)
		}
		e["label"].(map[string]any)["target"] = target
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(entries[0], data, 0o600); err != nil {
			t.Fatal(err)
		}
		r := f.run(t, "cache", "list", "--cache-dir", f.cacheDir)
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("cache list: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
		}
		assertNoControl(t, "cache list", r.Stdout)
		if !strings.Contains(r.Stdout, strconv.Quote(target)) {
			t.Errorf("cache list does not show the target quoted as %s:\n%q", strconv.Quote(target), redact(r.Stdout))
		}
	}
}

// plainFront serves f's broker over plain http on loopback, a test broker
// for --insecure-http, and returns its endpoint URL.
func (f *fixture) plainFront(t *testing.T) string {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(mustRead(t, f.caFile)) {
		t.Fatal("broker CA file holds no certificate")
	}
	u, err := url.Parse(f.Broker.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	front.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	return srv.URL + brokertest.Path
}

// proxyEverything starts an HTTP proxy that answers nothing and fails the
// test at its end if anything reached it, and returns the environment that
// sends every request through it.
func proxyEverything(t *testing.T) []string {
	t.Helper()
	var reached, withAuth atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		if len(r.Header.Values("Authorization")) > 0 {
			withAuth.Add(1)
		}
		http.Error(w, "no", http.StatusBadGateway)
	}))
	t.Cleanup(func() {
		proxy.Close()
		if n := reached.Load(); n > 0 {
			t.Errorf("the proxy got %d requests (%d with an Authorization header), want none", n, withAuth.Load())
		}
	})
	var env []string
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		env = append(env, name+"="+proxy.URL)
	}
	return append(env, "NO_PROXY=", "no_proxy=")
}

// shareCacheDir moves f's cache into a new directory anyone may write to,
// as a Kubernetes emptyDir is.
func (f *fixture) shareCacheDir(t *testing.T) {
	t.Helper()
	f.cacheDir = filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(f.cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f.cacheDir, 0o777); err != nil {
		t.Fatal(err)
	}
}

// shareAfterPriming primes f's cache, takes its entry out, poisoned, and
// moves f's cache to a new shared directory. It returns where brokercred's
// private subdirectory belongs in that directory, and the poisoned entry,
// for a case to plant there as another user would.
func (f *fixture) shareAfterPriming(t *testing.T) (sub, entry string) {
	t.Helper()
	primed := f.prime(t)
	entry = filepath.Join(t.TempDir(), filepath.Base(primed))
	if err := os.Rename(primed, entry); err != nil {
		t.Fatal(err)
	}
	f.plantPoison(t, entry, nil)
	f.shareCacheDir(t)
	return filepath.Join(f.cacheDir, filepath.Base(filepath.Dir(primed))), entry
}

// moveInto moves the file at path into dir and returns its new path.
func moveInto(t *testing.T, path, dir string) string {
	t.Helper()
	moved := filepath.Join(dir, filepath.Base(path))
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	return moved
}

// plantAsNobody gives the files at paths (links themselves, not what they
// point at) to nobody, as if nobody had planted them. Only root can.
func plantAsNobody(t *testing.T, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file to another user")
	}
	for _, path := range paths {
		if err := os.Lchown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
}

// foreignEntry is the name of a file another user planted, named like a
// cache entry.
const foreignEntry = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.json"

// decoys are files brokercred did not write, in the shared cache dir and in
// its private subdirectory sub: other programs' JSON, and foreignEntry.
func decoys(dir, sub string) []string {
	var paths []string
	for _, d := range []string{dir, sub} {
		for _, name := range []string{"package.json", "notes.json", foreignEntry} {
			paths = append(paths, filepath.Join(d, name))
		}
	}
	return paths
}

// refusedSubject is a pod identity the broker of the 403 case refuses.
const refusedSubject = "system:serviceaccount:argocd:someone-else"

func TestFaults(t *testing.T) {
	for _, tc := range faultCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, healthy := tc.arrange(t)

			start := time.Now()
			r := f.call(t, "token")
			end := time.Now()

			brokertest.NoLeak(t, "stderr", r.Stderr, f.secrets()...)
			if got := len(f.Broker.Requests()); got != tc.wantRequests {
				t.Errorf("broker got %d requests, want %d", got, tc.wantRequests)
			}
			var token string
			if tc.wantExit == 0 {
				if r.Code != 0 || r.Stderr != "" {
					t.Fatalf("exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
				}
				cred := assertGoodCredential(t, f, r.Stdout, end)
				token = cred.Status.Token
				if tc.check != nil {
					tc.check(t, f, start, end, cred)
				}
			} else {
				if r.Code != tc.wantExit {
					t.Errorf("exit code %d, want %d", r.Code, tc.wantExit)
				}
				assertOneErrorLine(t, r, tc.wantStderr)
				brokertest.NoLeak(t, "stdout", r.Stdout, f.secrets()...)
				t.Logf("%s", redact(r.Stderr))
			}
			assertCacheClean(t, f)
			cached, wantEntries := tc.wantExit == 0 && !tc.uncached, 0
			if cached {
				wantEntries = 1
			}
			if n := len(cacheEntries(t, f)); n != wantEntries {
				t.Errorf("the call left %d cache entries, want %d", n, wantEntries)
			}

			// Heal the fault, keep the cache: the next call must get a
			// correct credential, from the cache when the faulty call
			// stored one, and never anything planted or half-written.
			f = healed(t, f, healthy)
			before := len(f.Broker.Requests())
			again := f.call(t, "token")
			if again.Code != 0 || again.Stderr != "" {
				t.Fatalf("healthy call after the fault: exit code %d, stderr:\n%s", again.Code, redact(again.Stderr))
			}
			cred := assertGoodCredential(t, f, again.Stdout, time.Now())
			wantNew := 1
			if cached {
				wantNew = 0
				if cred.Status.Token != token {
					t.Errorf("healthy call after the fault did not reuse the cached token")
				}
			}
			if got := len(f.Broker.Requests()) - before; got != wantNew {
				t.Errorf("healthy call after the fault made %d broker requests, want %d", got, wantNew)
			}
			assertCacheClean(t, f)
			if tc.then != nil {
				tc.then(t, f)
			}
		})
	}
}

// assertGoodCredential checks stdout is one ExecCredential holding a token
// the broker issued for the fixture's target and pod identity, valid at now
// and until the reported expiry, and not a planted one.
func assertGoodCredential(t *testing.T, f *fixture, stdout string, now time.Time) credential {
	t.Helper()
	cred := parseCredential(t, stdout)
	tok := cred.Status.Token
	rest := strings.Replace(stdout, tok, "", 1)
	brokertest.NoLeak(t, "stdout besides the token", rest, f.secrets()...)
	brokertest.NoLeak(t, "credential token", tok, append([]string{f.podToken}, f.planted...)...)
	if err := f.Broker.Verify(tok, f.target, now); err != nil {
		t.Fatalf("credential token does not verify for %s: %v", f.target, err)
	}
	pod, _ := broker.ParseClaims(f.podToken) // an opaque pod token has no subject
	if got := tokenClaims(t, tok).Subject; got != pod.Subject {
		t.Errorf("credential token is for subject %q, want %q", got, pod.Subject)
	}
	if exp := cred.Status.ExpirationTimestamp; !exp.After(now) {
		t.Errorf("expirationTimestamp %v is not after the call", exp)
	} else if err := f.Broker.Verify(tok, f.target, exp); err != nil {
		t.Errorf("credential token is dead by its own expirationTimestamp: %v", err)
	}
	return cred
}

// assertCacheClean checks the cache holds no temp file left behind and
// nothing that holds the pod token, and that no file name reveals a token.
func assertCacheClean(t *testing.T, f *fixture) {
	t.Helper()
	_ = filepath.WalkDir(f.cacheDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // a missing or unreadable dir holds nothing
		}
		brokertest.NoLeak(t, "cache file name", d.Name(), f.secrets()...)
		if !d.Type().IsRegular() {
			return nil // a dir is walked; a FIFO would block a read, a link leads out
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("cache holds a leftover temp file %s", d.Name())
		}
		if data, err := os.ReadFile(path); err == nil {
			brokertest.NoLeak(t, "cache file "+d.Name(), string(data), f.podToken)
		}
		return nil
	})
}
