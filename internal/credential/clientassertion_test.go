package credential

import (
	"os"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// assertionFixture is a fake broker's client-assertion endpoint with options
// asking it, as app, for api://TARGET/.default.
func assertionFixture(t *testing.T, bo brokertest.Options) fixture {
	t.Helper()
	f := newFixture(t, bo)
	f.opts.Protocol, f.opts.BrokerURL = "client-assertion", f.broker.ClientAssertionURL()
	f.opts.OAuth.ClientID, f.opts.OAuth.Scopes = "app", []string{"api://{target}/.default"}
	return f
}

// TestRunClientAssertionCachesLongTokens: a token Entra issues for a day is
// cached for that day, less the refresh margin, and never beyond --max-ttl.
func TestRunClientAssertionCachesLongTokens(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxTTL   time.Duration
		wantLife time.Duration // of the token served first: its reported expiry plus the margin
	}{
		{name: "a day, within the default --max-ttl", maxTTL: 24 * time.Hour, wantLife: 24 * time.Hour},
		{name: "capped by --max-ttl 1h", maxTTL: time.Hour, wantLife: time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := assertionFixture(t, brokertest.Options{TTL: 24 * time.Hour})
			f.opts.MaxTTL = tc.maxTTL
			start := time.Now()
			now := start
			clock := func() time.Time { return now }
			first, err := run(t, f.opts, Env{Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			// The token's exp claim has whole seconds: it may end up to a
			// second before the stated lifetime.
			want := start.Add(tc.wantLife - f.opts.RefreshMargin)
			if got := first.Status.ExpirationTimestamp; got.Before(want.Add(-2*time.Second)) || got.After(want) {
				t.Errorf("expirationTimestamp = start+%v, want start+%v (lifetime %v less the %v margin)", got.Sub(start), want.Sub(start), tc.wantLife, f.opts.RefreshMargin)
			}
			if err := f.broker.Verify(first.Status.Token, "api://dev", time.Now()); err != nil {
				t.Errorf("served token does not verify for api://dev: %v", err)
			}

			now = start.Add(tc.wantLife - f.opts.RefreshMargin - time.Minute)
			rotatePodToken(t, f, now)
			second, err := run(t, f.opts, Env{Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(f.broker.Requests()); n != 1 || second.Status.Token != first.Status.Token {
				t.Errorf("a minute before the reported expiry: broker requests = %d, same token = %v; want 1 and the cached token", n, second.Status.Token == first.Status.Token)
			}

			now = start.Add(tc.wantLife - f.opts.RefreshMargin/2) // inside the margin
			rotatePodToken(t, f, now)
			if _, err := run(t, f.opts, Env{Now: clock}); err != nil {
				t.Fatal(err)
			}
			if n := len(f.broker.Requests()); n != 2 {
				t.Errorf("inside the refresh margin: broker requests = %d, want 2", n)
			}
		})
	}
}

// TestRunClientAssertionCachesPerScopeSet: two scope sets for the same
// target and identity are two cache entries, each with its own token.
func TestRunClientAssertionCachesPerScopeSet(t *testing.T) {
	f := assertionFixture(t, brokertest.Options{TTL: time.Hour})
	for _, step := range []struct {
		scopes []string
		aud    string
		want   int // broker requests so far
	}{
		{[]string{"api://{target}/.default"}, "api://dev", 1},
		{[]string{"{target}/.default"}, "dev", 2},
		{[]string{"api://{target}/.default"}, "api://dev", 2},
		{[]string{"api://{target}/.default", "openid"}, "api://dev", 3},
	} {
		f.opts.OAuth.Scopes = step.scopes
		c, err := run(t, f.opts, Env{})
		if err != nil {
			t.Fatalf("scopes %q: %v", step.scopes, err)
		}
		if err := f.broker.Verify(c.Status.Token, step.aud, time.Now()); err != nil {
			t.Errorf("scopes %q: token does not verify for %s: %v", step.scopes, step.aud, err)
		}
		if n := len(f.broker.Requests()); n != step.want {
			t.Errorf("scopes %q: broker requests = %d, want %d", step.scopes, n, step.want)
		}
	}
}

// rotatePodToken writes a pod token valid for an hour after now, as the
// kubelet keeps the projected token fresh: same issuer and subject, so the
// same cache entry.
func rotatePodToken(t *testing.T, f fixture, now time.Time) {
	t.Helper()
	if err := os.WriteFile(f.opts.TokenFile, []byte(brokertest.PodToken(subject, now.Add(time.Hour))), 0o600); err != nil {
		t.Fatal(err)
	}
}
