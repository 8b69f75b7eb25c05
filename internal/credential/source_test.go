package credential

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// TestCacheHitOpensNoCAAndNoSocket: once the cache holds the token, a call
// neither reads --ca-file (it points nowhere) nor reaches the broker (it is
// gone): a hit costs no TLS set-up at all.
func TestCacheHitOpensNoCAAndNoSocket(t *testing.T) {
	f := newFixture(t, brokertest.Options{})
	first, err := run(t, f.opts, Env{})
	if err != nil {
		t.Fatal(err)
	}
	f.broker.Close()
	f.opts.CAFile = filepath.Join(t.TempDir(), "no-such-ca.pem")
	second, err := run(t, f.opts, Env{})
	if err != nil {
		t.Fatalf("cache hit with an unreadable CA file and no broker: %v", err)
	}
	if second.Status.Token != first.Status.Token {
		t.Error("the hit served another token than the one cached")
	}
}

// TestRefusedTokenIsReplacedOncePerWindow plays client-go after a 401: the
// same caller comes back while its token is fresh. brokercred fetches a new
// token, serves it to every caller, and fetches at most once per
// refusedRefreshWindow however often callers come back.
func TestRefusedTokenIsReplacedOncePerWindow(t *testing.T) {
	f := newFixture(t, brokertest.Options{TTL: 10 * time.Minute})
	now := time.Now()
	clock := func() time.Time { return now }
	call := func(caller string) string {
		t.Helper()
		var logs bytes.Buffer
		c, err := run(t, f.opts, Env{Now: clock, Caller: caller, Log: textLogger(&logs), ExecInfo: execInfoFor("null")})
		if err != nil {
			t.Fatalf("caller %s: %v", caller, err)
		}
		brokertest.NoLeak(t, "log", logs.String(), f.pod)
		brokertest.NoLeak(t, "log", logs.String(), c.Status.Token)
		return c.Status.Token
	}
	first := call("100")
	for _, step := range []struct {
		name      string
		advance   time.Duration
		caller    string
		wantReqs  int
		wantFirst bool // served the first token
	}{
		{"another process shares the entry", 0, "200", 1, true},
		{"the first caller comes back: refused, refetched at once", 0, "100", 2, false},
		{"the second caller comes back for the old token: gets the new one", 0, "200", 2, false},
		{"the new token is refused too, within the window: served again", 5 * time.Second, "100", 2, false},
		{"after the window: refetched", 5 * time.Second, "100", 3, false},
		{"a new process: the newest token, no request", 0, "300", 3, false},
	} {
		now = now.Add(step.advance)
		tok := call(step.caller)
		if n := len(f.broker.Requests()); n != step.wantReqs {
			t.Errorf("%s: broker requests = %d, want %d", step.name, n, step.wantReqs)
		}
		if (tok == first) != step.wantFirst {
			t.Errorf("%s: served the first token = %v, want %v", step.name, tok == first, step.wantFirst)
		}
	}
	if issued := f.broker.Issued(); call("300") != issued[len(issued)-1] {
		t.Error("the cache does not hold the newest token")
	}
}

// TestOnlyClientGoCallsAreJudgedRefused: without a caller, or without
// KUBERNETES_EXEC_INFO (a person or a script running brokercred by hand),
// coming back is an ordinary hit.
func TestOnlyClientGoCallsAreJudgedRefused(t *testing.T) {
	for _, env := range []Env{{}, {Caller: "100"}, {ExecInfo: execInfoFor("null")}} {
		f := newFixture(t, brokertest.Options{TTL: 10 * time.Minute})
		for range 3 {
			if _, err := run(t, f.opts, env); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(f.broker.Requests()); n != 1 {
			t.Errorf("caller %q, exec info set %v: broker requests = %d, want 1", env.Caller, env.ExecInfo != "", n)
		}
	}
}

// TestExpiryIsTheEarliestAndCapped: the broker's stated expiry never
// outlives the token's exp claim, and no lifetime exceeds --max-ttl.
func TestExpiryIsTheEarliestAndCapped(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name         string
		jwtExp       time.Time // zero: no exp claim
		stated       string
		maxTTL       time.Duration
		wantReported time.Duration // expirationTimestamp - now
	}{
		{"far-future statement, exp in a minute", now.Add(time.Minute), "2099-01-01T00:00:00Z", 24 * time.Hour, 50 * time.Second},
		{"stated before exp", now.Add(time.Hour), now.Add(2 * time.Minute).UTC().Format(time.RFC3339), 24 * time.Hour, 110 * time.Second},
		{"no exp, far-future statement: capped", time.Time{}, "2099-01-01T00:00:00Z", time.Hour, time.Hour - 10*time.Second},
		{"exp beyond max-ttl: capped", now.Add(48 * time.Hour), "", 24 * time.Hour, 24*time.Hour - 10*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, brokertest.Options{})
			f.opts.MaxTTL = tc.maxTTL
			tok := f.broker.Issue(f.opts.Target, subject, tc.jwtExp)
			body, _ := json.Marshal(map[string]string{"token": tok, "expirationTimestamp": tc.stated})
			if tc.stated == "" {
				body = []byte(tok)
			}
			f.broker.Queue(brokertest.Response{Body: string(body)})
			c, err := run(t, f.opts, Env{Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			if d := c.Status.ExpirationTimestamp.Sub(now); d < tc.wantReported-2*time.Second || d > tc.wantReported+time.Second {
				t.Errorf("expirationTimestamp = now+%v, want now+%v", d, tc.wantReported)
			}
		})
	}
}

// TestEchoedPodTokenIsRefused: an endpoint that sends the request's bearer
// token back must not make brokercred hand the pod token on or cache it.
func TestEchoedPodTokenIsRefused(t *testing.T) {
	for _, body := range []string{"POD", `{"token":"POD"}`, "prefix.POD"} {
		f := newFixture(t, brokertest.Options{})
		f.broker.Queue(brokertest.Response{Body: strings.ReplaceAll(body, "POD", f.pod)})
		_, err := run(t, f.opts, Env{})
		if err == nil || !strings.Contains(err.Error(), "sent back the pod token itself") {
			t.Fatalf("body shape %q: err = %v, want the echo refused", body, err)
		}
		brokertest.NoLeak(t, "error", err.Error(), f.pod)
		if entries, _ := filepath.Glob(filepath.Join(f.opts.CacheDir, "*", "*.json")); len(entries) != 0 {
			t.Errorf("body shape %q: the echoed token was cached", body)
		}
	}
}
