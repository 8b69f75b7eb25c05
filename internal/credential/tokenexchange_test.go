package credential

import (
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

func TestRunTokenExchangeCachesPerAudience(t *testing.T) {
	f := newFixture(t, brokertest.Options{TTL: time.Minute})
	f.opts.Protocol, f.opts.BrokerURL = "token-exchange", f.broker.ExchangeURL()
	for _, audience := range []string{"aud-a", "aud-b", "aud-a", ""} {
		f.opts.OAuth.Audience = audience
		c, err := run(t, f.opts, Env{})
		if err != nil {
			t.Fatalf("audience %q: %v", audience, err)
		}
		want := audience
		if want == "" {
			want = f.opts.Target
		}
		if err := f.broker.Verify(c.Status.Token, want, time.Now()); err != nil {
			t.Errorf("audience %q: token does not verify for %s: %v", audience, want, err)
		}
	}
	if n := len(f.broker.Requests()); n != 3 {
		t.Errorf("broker got %d requests, want 3 (aud-a, aud-b, the target; the second aud-a from the cache)", n)
	}
}
