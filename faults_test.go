//go:build unix

package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// faultCase is one thing that goes wrong around a `brokercred token` call:
// at the broker, at the caller, or in the cache. Issue 8 lists them; the
// ones TestCLIErrors already drives are not repeated here.
type faultCase struct {
	name string
	opts brokertest.Options
	// prepare injects the fault into f. It may prime the cache first (those
	// broker requests count in wantRequests).
	prepare func(t *testing.T, f *faultFixture)
	// wantOK says the call must print a correct credential; otherwise it
	// must fail with one stderr line holding wantErr.
	wantOK  bool
	wantErr string
	// wantRequests is how many requests the broker gets, priming included.
	wantRequests int
	// uncached says a successful call could not cache its token, so the
	// healthy call after it asks the broker again.
	uncached bool
	// check looks further at a successful call's credential.
	check func(t *testing.T, f *faultFixture, start, end time.Time, cred credential)
}

// faultFixture is a fixture with what a fault may change beyond flags: a
// command that wraps the process (ulimit), tokens planted where they must
// never be served from, and how to heal the fault for the call after it.
type faultFixture struct {
	*fixture
	wrap   []string
	poison []string
	heal   []func()
}

// run runs brokercred as the fixture says, inside wrap when set.
func (f *faultFixture) run(t *testing.T, extra ...string) result {
	t.Helper()
	argv := append(append(append([]string(nil), f.wrap...), binary), append(f.args(), extra...)...)
	return runArgv(t, f.env, argv)
}

// runArgv runs argv[0] with the rest as arguments and exactly env.
func runArgv(t *testing.T, env, argv []string) result {
	t.Helper()
	r, err := execute(env, argv)
	if err != nil {
		t.Fatalf("run %s: %v", filepath.Base(argv[0]), err)
	}
	return r
}

// newFaultFixture starts a broker with opts and writes a sentinel pod token
// whose signature is easy to spot in a leak.
func newFaultFixture(t *testing.T, opts brokertest.Options) *faultFixture {
	t.Helper()
	f := &faultFixture{fixture: newFixture(t, opts, podSubject)}
	f.writePodToken(t, sentinelPodToken(podSubject))
	return f
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

// secrets are every token the case must not leak: the pod token, all the
// broker minted, and all planted.
func (f *faultFixture) secrets() []string {
	return append(append([]string{f.podToken}, f.broker.Issued()...), f.poison...)
}

// prime makes one successful call so the cache holds an entry, and returns
// its path.
func (f *faultFixture) prime(t *testing.T) string {
	t.Helper()
	if r := f.fixture.run(t); r.code != 0 {
		t.Fatalf("priming the cache: exit code %d, stderr:\n%s", r.code, r.stderr)
	}
	entries, err := testkit.CacheEntries(f.cacheDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("cache holds entries %v (%v), want exactly one", entries, err)
	}
	return entries[0]
}

// plantPoison rewrites the cached entry at path to hold a token the broker
// really issued for this target and subject, valid for an hour, after edit
// has changed the entry's fields. The entry is untrustworthy, so the token
// must never be served, although it would work.
func (f *faultFixture) plantPoison(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(mustRead(t, path), &e); err != nil {
		t.Fatal(err)
	}
	poison := f.broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
	f.poison = append(f.poison, poison)
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
	return []faultCase{
		// Broker faults.
		{
			name: "connection refused",
			prepare: func(t *testing.T, f *faultFixture) {
				f.brokerURL = "https://" + closedPort(t) + brokertest.Path
			},
			wantErr: "connection refused; check the URL, DNS and network policy",
		},
		{
			name: "DNS failure",
			prepare: func(t *testing.T, f *faultFixture) {
				f.brokerURL = "https://broker.brokercred.invalid" + brokertest.Path
			},
			wantErr: "reach broker broker.brokercred.invalid: dial tcp: lookup broker.brokercred.invalid",
		},
		{
			name: "TLS certificate for another host name",
			prepare: func(t *testing.T, f *faultFixture) {
				f.brokerURL = strings.Replace(f.brokerURL, "127.0.0.1", "localhost", 1)
			},
			wantErr: "presented a certificate for another host name; fix --broker-url",
		},
		{
			name: "TLS certificate expired",
			prepare: func(t *testing.T, f *faultFixture) {
				expired := brokertest.NewServer(brokertest.Options{ExpiredCert: true})
				t.Cleanup(expired.Close)
				f.brokerURL, f.caFile = expired.URL, expired.CAFile(t.TempDir())
			},
			wantErr: "presented an invalid certificate (expired or not yet valid); renew the broker's certificate or fix the clock",
		},
		{
			name: "hanging broker",
			prepare: func(t *testing.T, f *faultFixture) {
				f.broker.Queue(brokertest.Response{Hang: true})
				f.extra = append(f.extra, "--timeout", "1s")
			},
			wantErr:      "did not answer in time; check it is up and reachable, or raise --timeout",
			wantRequests: 1,
		},
		{
			name: "slow body",
			prepare: func(t *testing.T, f *faultFixture) {
				tok := f.broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "text/plain"}, Body: tok, Trickle: 100 * time.Millisecond})
				f.extra = append(f.extra, "--timeout", "1s")
			},
			wantErr:      "did not finish its answer in time",
			wantRequests: 1,
		},
		{
			name: "connection reset once, then a token",
			prepare: func(t *testing.T, f *faultFixture) {
				f.broker.Queue(reset)
			},
			wantOK:       true,
			wantRequests: 2,
		},
		{
			name: "connection reset on every try",
			prepare: func(t *testing.T, f *faultFixture) {
				f.broker.Queue(reset, reset, reset, reset, reset)
			},
			wantErr:      "connection reset by peer; check the URL, DNS and network policy",
			wantRequests: 5,
		},
		{
			name: "500 and 502, then a token",
			prepare: func(t *testing.T, f *faultFixture) {
				f.broker.Queue(status500, status502)
			},
			wantOK:       true,
			wantRequests: 3,
		},
		{
			name: "429 with Retry-After inside --timeout",
			prepare: func(t *testing.T, f *faultFixture) {
				f.broker.Queue(brokertest.Response{Status: 429, Header: map[string]string{"Retry-After": "1"}})
				f.extra = append(f.extra, "--timeout", "10s")
			},
			wantOK:       true,
			wantRequests: 2,
		},
		{
			name: "429 with Retry-After beyond --timeout",
			prepare: func(t *testing.T, f *faultFixture) {
				f.broker.Queue(brokertest.Response{Status: 429, Header: map[string]string{"Retry-After": "3600"}})
				f.extra = append(f.extra, "--timeout", "3s")
			},
			wantErr:      "is rate limiting (HTTP 429) and did not recover within --timeout",
			wantRequests: 1,
		},
		{
			name: "401 is not retried and names the subject",
			prepare: func(t *testing.T, f *faultFixture) {
				f.broker.Queue(brokertest.Response{Status: 401, Body: "token rejected"})
			},
			wantErr:      "broker refused the identity \"" + podSubject + "\" for target \"prod-east\" (HTTP 401)",
			wantRequests: 1,
		},
		{
			name: "malformed JSON",
			prepare: func(t *testing.T, f *faultFixture) {
				tok := f.broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "application/json"}, Body: `{"token": "` + tok})
			},
			wantErr:      "answered with malformed JSON (syntax error at byte",
			wantRequests: 1,
		},
		{
			name: "endless body",
			prepare: func(t *testing.T, f *faultFixture) {
				tok := f.broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "text/plain"}, Body: strings.Repeat(tok, 64), Endless: true})
			},
			wantErr:      "answered with a body larger than 256 KiB, which is no token; check --broker-url",
			wantRequests: 1,
		},
		{
			name:         "token without exp uses --default-ttl",
			opts:         brokertest.Options{NoExp: true},
			prepare:      func(t *testing.T, f *faultFixture) { f.extra = append(f.extra, "--default-ttl", "90s") },
			wantOK:       true,
			wantRequests: 1,
			check: func(t *testing.T, f *faultFixture, start, end time.Time, cred credential) {
				// 90s lifetime, reported the default 10s refresh margin early.
				lo, hi := start.Add(80*time.Second).Truncate(time.Second), end.Add(80*time.Second)
				if got := cred.Status.ExpirationTimestamp; got.Before(lo) || got.After(hi) {
					t.Errorf("expirationTimestamp is %v after the call, want about 80s (90s --default-ttl less the 10s margin)", got.Sub(end))
				}
			},
		},

		// Caller faults.
		{
			name: "pod token is not a JWT",
			prepare: func(t *testing.T, f *faultFixture) {
				f.writePodToken(t, "OPAQUE-SENTINEL-"+randomB64(48))
			},
			wantOK:       true,
			wantRequests: 1,
		},
		{
			name: "pod token unreadable",
			prepare: func(t *testing.T, f *faultFixture) {
				if err := os.Chmod(f.tokenFile, 0); err != nil {
					t.Fatal(err)
				}
				f.heal = append(f.heal, func() { _ = os.Chmod(f.tokenFile, 0o600) })
				if _, err := os.ReadFile(f.tokenFile); err == nil {
					t.Skipf("running as uid %d, which reads a mode 000 file", os.Geteuid())
				}
			},
			wantErr: "permission denied; run as a user that can read it (fsGroup) or set --token-file",
		},
		{
			name:    "bad flag value",
			prepare: func(t *testing.T, f *faultFixture) { f.extra = append(f.extra, "--timeout", "soon") },
			wantErr: `--timeout: expected duration but got "soon"`,
		},
		{
			name:    "misspelt flag",
			prepare: func(t *testing.T, f *faultFixture) { f.extra = append(f.extra, "--refresh-margn", "5s") },
			wantErr: `unknown flag --refresh-margn, did you mean "--refresh-margin"?`,
		},
		{
			name:    "unknown protocol",
			prepare: func(t *testing.T, f *faultFixture) { f.extra = append(f.extra, "--protocol", "soap") },
			wantErr: `--protocol must be one of "get-target-token","get","token-exchange"`,
		},
		{
			name: "unknown protocol from env",
			prepare: func(t *testing.T, f *faultFixture) {
				f.env = append(f.env, "BROKERCRED_PROTOCOL=soap")
			},
			wantErr: `--protocol must be one of "get-target-token","get","token-exchange"`,
		},

		// Cache faults.
		{
			name: "corrupt entry",
			prepare: func(t *testing.T, f *faultFixture) {
				if err := os.WriteFile(f.prime(t), []byte("\x00\x01 not json"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantOK:       true,
			wantRequests: 2,
		},
		{
			name: "truncated entry holding a whole token",
			prepare: func(t *testing.T, f *faultFixture) {
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				data := mustRead(t, path)
				if err := os.WriteFile(path, data[:len(data)-1], 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantOK:       true,
			wantRequests: 2,
		},
		{
			name: "entry in an older format",
			prepare: func(t *testing.T, f *faultFixture) {
				f.plantPoison(t, f.prime(t), func(e map[string]any) { e["version"] = 0 })
			},
			wantOK:       true,
			wantRequests: 2,
		},
		{
			name: "entry readable by others",
			prepare: func(t *testing.T, f *faultFixture) {
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				if err := os.Chmod(path, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantOK:       true,
			wantRequests: 2,
		},
		{
			name: "entry owned by another user",
			prepare: func(t *testing.T, f *faultFixture) {
				if os.Geteuid() != 0 {
					t.Skip("only root can give a file to another user")
				}
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				if err := os.Chown(path, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			},
			wantOK:       true,
			wantRequests: 2,
		},
		{
			name: "cache dir with missing parents",
			prepare: func(t *testing.T, f *faultFixture) {
				f.cacheDir = filepath.Join(t.TempDir(), "home", "argocd", ".cache", "brokercred")
			},
			wantOK:       true,
			wantRequests: 1,
			check: func(t *testing.T, f *faultFixture, _, _ time.Time, _ credential) {
				info, err := os.Stat(f.cacheDir)
				if err != nil || info.Mode().Perm() != 0o700 {
					t.Errorf("cache dir: %v, %v; want mode 0700", info.Mode(), err)
				}
			},
		},
		{
			name: "lock held by a killed process",
			prepare: func(t *testing.T, f *faultFixture) {
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
			wantOK:       true,
			wantRequests: 2,
		},
		{
			name: "lock held by a stuck process",
			prepare: func(t *testing.T, f *faultFixture) {
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				lock := strings.TrimSuffix(entry, ".json") + ".lock"
				holder := holdLock(t, lock)
				f.heal = append(f.heal, func() { _ = holder.Process.Kill(); _ = holder.Wait() })
				f.extra = append(f.extra, "--timeout", "2s")
			},
			wantOK:       true,
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "disk full",
			prepare: func(t *testing.T, f *faultFixture) {
				// RLIMIT_FSIZE 0: every write that grows a file fails with
				// EFBIG (Go ignores SIGXFSZ), as on a full disk.
				f.wrap = []string{"/bin/sh", "-c", `ulimit -f 0 && exec "$0" "$@"`}
			},
			wantOK:       true,
			wantRequests: 1,
			uncached:     true,
		},
		{
			name: "cache dir read-only",
			prepare: func(t *testing.T, f *faultFixture) {
				if os.Geteuid() == 0 {
					t.Skip("root writes into a read-only directory")
				}
				if err := os.Remove(f.prime(t)); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f.cacheDir, 0o500); err != nil {
					t.Fatal(err)
				}
				f.heal = append(f.heal, func() { _ = os.Chmod(f.cacheDir, 0o700) })
			},
			wantOK:       true,
			wantRequests: 2,
			uncached:     true,
		},
	}
}

func TestFaults(t *testing.T) {
	for _, tc := range faultCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultFixture(t, tc.opts)
			healthy := *f.fixture
			tc.prepare(t, f)

			start := time.Now()
			r := f.run(t)
			end := time.Now()

			assertNoSecret(t, "stderr", r.stderr, f.secrets()...)
			if got := len(f.broker.Requests()); got != tc.wantRequests {
				t.Errorf("broker got %d requests, want %d", got, tc.wantRequests)
			}
			var token string
			if tc.wantOK {
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("exit code %d, stderr:\n%s", r.code, r.stderr)
				}
				cred := assertGoodCredential(t, f, r.stdout, end)
				token = cred.Status.Token
				if tc.check != nil {
					tc.check(t, f, start, end, cred)
				}
			} else {
				assertOneErrorLine(t, r, tc.wantErr)
				t.Logf("%s", r.stderr) // checked above to hold no secret
			}
			assertCacheClean(t, f)

			// Heal the fault, keep the cache: the next call must get a
			// correct credential, from the cache when the faulty call
			// stored one, and never anything planted or half-written.
			for _, h := range f.heal {
				h()
			}
			cacheDir := f.cacheDir
			podToken := f.podToken
			f.fixture, f.wrap = &healthy, nil
			f.cacheDir, f.podToken = cacheDir, podToken
			before := len(f.broker.Requests())
			again := f.run(t)
			if again.code != 0 || again.stderr != "" {
				t.Fatalf("healthy call after the fault: exit code %d, stderr:\n%s", again.code, again.stderr)
			}
			cred := assertGoodCredential(t, f, again.stdout, time.Now())
			wantNew := 1
			if tc.wantOK && !tc.uncached {
				wantNew = 0
				if cred.Status.Token != token {
					t.Errorf("healthy call after the fault did not reuse the cached token")
				}
			}
			if got := len(f.broker.Requests()) - before; got != wantNew {
				t.Errorf("healthy call after the fault made %d broker requests, want %d", got, wantNew)
			}
			assertCacheClean(t, f)
		})
	}
}

// assertGoodCredential checks stdout is one ExecCredential holding a token
// the broker issued for the fixture's target and pod identity, valid at now
// and until the reported expiry, and not a planted one.
func assertGoodCredential(t *testing.T, f *faultFixture, stdout string, now time.Time) credential {
	t.Helper()
	cred := parseCredential(t, stdout)
	tok := cred.Status.Token
	rest := strings.Replace(stdout, tok, "", 1)
	assertNoSecret(t, "stdout besides the token", rest, f.secrets()...)
	assertNoSecret(t, "credential token", tok, append(f.poison, f.podToken)...)
	if err := f.broker.Verify(tok, f.target, now); err != nil {
		t.Fatalf("credential token does not verify for %s: %v", f.target, err)
	}
	claims, _ := broker.ParseClaims(f.podToken)
	if got := parseClaims(t, tok).Sub; got != claims.Subject {
		t.Errorf("credential token is for subject %q, want %q", got, claims.Subject)
	}
	if exp := cred.Status.ExpirationTimestamp; !exp.After(now) {
		t.Errorf("expirationTimestamp %v is not after the call", exp)
	} else if err := f.broker.Verify(tok, f.target, exp); err != nil {
		t.Errorf("credential token is dead by its own expirationTimestamp: %v", err)
	}
	return cred
}

// assertCacheClean checks the cache holds no temp file left behind and
// nothing that holds the pod token, and that no file name reveals a token.
func assertCacheClean(t *testing.T, f *faultFixture) {
	t.Helper()
	_ = filepath.WalkDir(f.cacheDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // a missing or unreadable dir holds nothing
		}
		assertNoSecret(t, "cache file name", d.Name(), f.secrets()...)
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("cache holds a leftover temp file %s", d.Name())
		}
		if data, err := os.ReadFile(path); err == nil {
			assertNoSecret(t, "cache file "+d.Name(), string(data), f.podToken)
		}
		return nil
	})
}
