//go:build unix

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	check func(t *testing.T, f *fixture, start, end time.Time, cred execCredential)
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

// faultCases are every fault case, gathered from the files that hold them
// by what they fault: the broker's answers (faults_broker_test.go), the
// caller's setup (faults_caller_test.go), the cache directory
// (faults_cache_test.go), the cache's served records
// (faults_served_test.go), and answers that echo a secret or outgrow a read
// limit (faults_echo_test.go). A new file of cases returns its own slice
// and joins the list here.
func faultCases() []faultCase {
	return slices.Concat(brokerFaults(), callerFaults(), cacheDirFaults(), servedRecordFaults(), echoFaults(), readLimitFaults())
}

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
func assertGoodCredential(t *testing.T, f *fixture, stdout string, now time.Time) execCredential {
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
