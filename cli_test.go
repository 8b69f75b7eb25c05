package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// herdSize is how many processes start at once, as when Argo CD refreshes
// many applications on one remote cluster.
const herdSize = 50

func TestCacheHerdMakesOneBrokerRequest(t *testing.T) {
	f := newFixture(t, withBroker(brokertest.Options{Latency: 300 * time.Millisecond}))

	first := assertHerdShares(t, f, herdSize)
	if got := len(f.Broker.Requests()); got != 1 {
		t.Fatalf("first herd: broker got %d requests, want 1", got)
	}

	second := assertHerdShares(t, f, herdSize)
	if got := len(f.Broker.Requests()); got != 1 {
		t.Fatalf("second herd: broker got %d requests, want still 1", got)
	}
	if first != second {
		t.Errorf("second herd got another credential than the first:\n%s\n%s", redact(first), redact(second))
	}
}

func TestCacheRefetchesOnceAfterExpiry(t *testing.T) {
	f := newFixture(t, withBroker(brokertest.Options{Latency: 300 * time.Millisecond, TTL: 5 * time.Second}))
	f.extra = []string{"--refresh-margin", "1s"}

	r := f.call(t, "token")
	if r.Code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
	}
	old := parseCredential(t, r.Stdout)
	oldExp := tokenClaims(t, old.Status.Token).Expiry
	if !old.Status.ExpirationTimestamp.Before(oldExp) {
		t.Errorf("expirationTimestamp %s is not before the token's exp %s: no refresh margin", old.Status.ExpirationTimestamp, oldExp)
	}

	// Wait, without asserting any timing, until the time client-go was told
	// has passed: the cached token still lives, but only within the margin.
	for !time.Now().After(old.Status.ExpirationTimestamp) {
		time.Sleep(50 * time.Millisecond)
	}

	renewed := assertHerdShares(t, f, 10)
	if got := len(f.Broker.Requests()); got != 2 {
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
	results := f.herd(t, n)
	for i, r := range results {
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("process %d: exit code %d, stderr:\n%s", i, r.Code, redact(r.Stderr))
		}
		if r.Stdout != results[0].Stdout {
			t.Fatalf("process %d printed another credential than process 0:\n%s\n%s", i, redact(r.Stdout), redact(results[0].Stdout))
		}
	}
	parseCredential(t, results[0].Stdout)
	return results[0].Stdout
}

func TestCacheSurvivesCrashMidWrite(t *testing.T) {
	f := newFixture(t)
	if r := f.call(t, "token"); r.Code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
	}
	entries := entryFiles(t, f.cacheDir)
	if len(entries) != 1 {
		t.Fatalf("cache holds entries %v, want exactly one", entries)
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

	r := f.call(t, "token")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("after a crash mid-write: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
	}
	cred := parseCredential(t, r.Stdout)
	if got := len(f.Broker.Requests()); got != 2 {
		t.Errorf("broker got %d requests, want 2: the truncated entry must not be served", got)
	}

	again := f.call(t, "token")
	if again.Code != 0 || parseCredential(t, again.Stdout).Status.Token != cred.Status.Token {
		t.Errorf("the call after the repair did not reuse the repaired entry: exit code %d, stderr:\n%s", again.Code, redact(again.Stderr))
	}
	if got := len(f.Broker.Requests()); got != 2 {
		t.Errorf("broker got %d requests, want still 2 after the entry was rewritten", got)
	}
}

func TestCacheKeepsIdentitiesApart(t *testing.T) {
	const subA, subB = "system:serviceaccount:team-a:deployer", "system:serviceaccount:team-b:deployer"
	f := newFixture(t, withSubject(subA))
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
			r := f.call(t, "token")
			if r.Code != 0 {
				t.Fatalf("round %d, %s: exit code %d, stderr:\n%s", round, id.sub, r.Code, redact(r.Stderr))
			}
			tok := parseCredential(t, r.Stdout).Status.Token
			if got := tokenClaims(t, tok).Subject; got != id.sub {
				t.Errorf("round %d: process with pod token for %s got a token for %s", round, id.sub, got)
			}
			if prev, ok := tokens[id.sub]; ok && prev != tok {
				t.Errorf("round %d: %s got a new token instead of its cached one", round, id.sub)
			}
			tokens[id.sub] = tok
		}
	}
	reqs := f.Broker.Requests()
	if len(reqs) != 2 || reqs[0].Subject != subA || reqs[1].Subject != subB {
		t.Errorf("broker requests = %+v, want one for %s then one for %s", reqs, subA, subB)
	}
}

func TestCacheDirUnwritable(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.cacheDir = filepath.Join(file, "sub")

	for i := 1; i <= 2; i++ {
		r := f.call(t, "token")
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("call %d: exit code %d, stderr:\n%s", i, r.Code, redact(r.Stderr))
		}
		parseCredential(t, r.Stdout)
		if got := len(f.Broker.Requests()); got != i {
			t.Errorf("after call %d the broker got %d requests, want %d (no cache to serve from)", i, got, i)
		}
	}
}

func TestCacheListAndClear(t *testing.T) {
	f := newFixture(t)
	var issued []string
	for _, target := range []string{"prod-east", "staging"} {
		f.target = target
		r := f.call(t, "token")
		if r.Code != 0 {
			t.Fatalf("%s: exit code %d, stderr:\n%s", target, r.Code, redact(r.Stderr))
		}
		issued = append(issued, parseCredential(t, r.Stdout).Status.Token)
	}
	list := func() string {
		t.Helper()
		r := f.run(t, "cache", "list", "--cache-dir", f.cacheDir)
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("cache list: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
		}
		brokertest.NoLeak(t, "cache list", r.Stdout, append(issued, f.podToken)...)
		return r.Stdout
	}

	out := list()
	for _, want := range []string{"prod-east", "staging", podSubject} {
		if !strings.Contains(out, want) {
			t.Errorf("cache list does not show %q:\n%s", want, redact(out))
		}
	}

	r := f.run(t, "cache", "clear", "--cache-dir", f.cacheDir, "--target", "prod-east")
	if r.Code != 0 || r.Stderr != "removed 1 cache entries\n" {
		t.Fatalf("cache clear --target prod-east: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
	}
	out = list()
	if strings.Contains(out, "prod-east") || !strings.Contains(out, "staging") {
		t.Errorf("after clearing prod-east, cache list shows:\n%s", redact(out))
	}

	f.target = "prod-east"
	if r := f.call(t, "token"); r.Code != 0 {
		t.Fatalf("exit code %d after clear, stderr:\n%s", r.Code, redact(r.Stderr))
	}
	if got := len(f.Broker.Requests()); got != 3 {
		t.Errorf("broker got %d requests, want 3: the cleared target must be fetched again", got)
	}
}
