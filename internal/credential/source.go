package credential

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/cache"
	"github.com/brokercred/brokercred/internal/plugin"
)

// refusedRefreshWindow is the least time between two forced refreshes of
// one key. A caller that asks again for a fresh token had it refused by its
// API server; brokercred then fetches a new one at once, unless the refused
// token was itself fetched by a forced refresh less than this long ago: a
// remote cluster that refuses every token costs the broker one request per
// key per window, not one per call, while a first refusal (a rotated signing
// key, a revoked token) heals within one round trip.
const refusedRefreshWindow = 10 * time.Second

// Obtained is a broker token and when brokercred obtained it.
type Obtained struct {
	broker.Token
	// At is when the broker answered; the token's life is counted from it.
	At time.Time
}

// Source serves the token for one cache key: from the cache while it is
// fresh, else from the broker under the key's lock, so that concurrent
// processes make a single broker request. Its zero value is not usable;
// every field but Cache, Caller and Log must be set.
type Source struct {
	// Cache holds tokens across processes; nil asks the broker every time.
	Cache *cache.Cache
	// Key names this call's entry.
	Key cache.Key
	// Protocol and Call are the broker request; Client builds the broker's
	// HTTP client, on a miss only (a hit loads no CA and sets up no TLS).
	Protocol broker.Chosen
	Call     broker.Call
	Client   func() (*broker.Client, error)
	// Now is the clock expiry is judged by.
	Now func() time.Time
	// Margin is how early the reported expiry comes (see reportedExpiry).
	Margin time.Duration
	// DefaultTTL is the lifetime of a token whose expiry nobody states;
	// MaxTTL caps every lifetime.
	DefaultTTL, MaxTTL time.Duration
	// LockWait bounds the wait for another process's fetch, leaving the rest
	// of the budget to fetch ourselves.
	LockWait time.Duration
	// Caller names the process served (see Env.Caller); empty never
	// detects a refused token.
	Caller string
	// Log receives the trace of the call; nil discards it.
	Log *slog.Logger
}

// Token returns a fresh token for the key.
func (s *Source) Token(ctx context.Context) (Obtained, error) {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.Cache == nil {
		s.Log.Debug("cache off")
		return s.fetch(ctx)
	}
	if tok, again := s.cached(); tok.Value != "" && !again {
		return tok, nil
	}
	start := s.Now()
	lockCtx, cancel := context.WithTimeout(ctx, s.LockWait)
	unlock, err := s.Cache.Lock(lockCtx, s.Key)
	cancel()
	if err != nil {
		if tok, again := s.cached(); tok.Value != "" && !again {
			return tok, nil
		}
		s.Log.Info("cache unusable, continuing without it", "reason", err.Error())
		return s.fetch(ctx)
	}
	defer unlock()
	s.Log.Debug("took cache lock", "waited", s.Now().Sub(start))
	// Judged again under the lock: another process may have filled or
	// replaced the entry while we waited.
	tok, again := s.cached()
	if tok.Value != "" && !(again && s.mayReplaceRefused(tok)) {
		return tok, nil
	}
	tok, err = s.fetch(ctx)
	if err != nil {
		return tok, err
	}
	if err := s.Cache.Put(s.Key, cache.Entry{Token: tok.Value, Expiry: tok.Expiry, Issued: tok.At, ExpirySource: tok.ExpirySource}); err != nil {
		s.Log.Info("cache write failed, token served uncached", "reason", err.Error())
		return tok, nil
	}
	if s.Caller != "" {
		_, _ = s.Cache.Served(s.Key, s.Caller, cache.Entry{Issued: tok.At})
	}
	return tok, nil
}

// mayReplaceRefused decides, under the key's lock, whether the fresh token
// tok that its caller came back for (its API server refused it) is replaced
// now: yes, unless a refused token of this key was replaced less than
// refusedRefreshWindow ago, or that cannot be recorded (an unwritable cache
// must not turn every call into a broker request).
func (s *Source) mayReplaceRefused(tok Obtained) bool {
	target := s.Key.Label["target"]
	allowed, err := s.Cache.Throttle(s.Key, s.Now(), refusedRefreshWindow)
	switch {
	case err != nil:
		s.Log.Info("caller came back for a fresh token (its API server refused it), but the cache cannot record a replacement: serving it again", "target", target, "reason", err.Error())
	case !allowed:
		s.Log.Info("caller came back for a fresh token (its API server refused it), but a refused token was replaced less than the refresh window ago: serving it again",
			"target", target, "age", s.Now().Sub(tok.At).Round(time.Millisecond), "window", refusedRefreshWindow)
	default:
		s.Log.Info("caller came back for a fresh token: its API server refused it; fetching a new one", "target", target)
	}
	return allowed
}

// cached returns the entry for the key while it is fresh by the refresh
// margin, its lifetime judged by this call's --max-ttl and --default-ttl
// whoever cached it; again says this caller had been served that entry
// before, which means its API server refused the token.
func (s *Source) cached() (tok Obtained, again bool) {
	now := s.Now()
	target := s.Key.Label["target"]
	e, err := s.Cache.Get(s.Key, now)
	if err != nil {
		s.Log.Debug("cache miss", "target", target, "reason", err.Error())
		return Obtained{}, false
	}
	tok = Obtained{Token: broker.Token{Value: e.Token, Expiry: s.capped(e), ExpirySource: "cache"}, At: e.Issued}
	// The wire format keeps whole seconds: judge freshness by what client-go
	// will read, or it would come back at once in the entry's last second.
	if !now.Before(reportedExpiry(tok.At, tok.Expiry, s.Margin).Truncate(time.Second)) {
		s.Log.Debug("cache miss", "target", target, "reason", "entry within the refresh margin")
		return Obtained{}, false
	}
	if s.Caller != "" {
		again, err = s.Cache.Served(s.Key, s.Caller, e)
		if err != nil {
			s.Log.Debug("cannot record the caller", "reason", err.Error())
		}
	}
	if !again {
		s.Log.Debug("cache hit", "target", target, "expiry", tok.Expiry)
	}
	return tok, again
}

// capped is e's expiry as this call would have settled it: never beyond
// MaxTTL after it was obtained, nor beyond DefaultTTL when nobody stated
// its expiry.
func (s *Source) capped(e cache.Entry) time.Time {
	limit := e.Issued.Add(s.MaxTTL)
	if e.ExpirySource == "default-ttl" {
		limit = e.Issued.Add(s.DefaultTTL)
	}
	if e.Expiry.After(limit) {
		return limit
	}
	return e.Expiry
}

// fetch asks the broker and settles the token's expiry: the broker's word
// (or the token's exp, whichever is earlier), else DefaultTTL, and never
// beyond MaxTTL.
func (s *Source) fetch(ctx context.Context) (Obtained, error) {
	client, err := s.Client()
	if err != nil {
		return Obtained{}, err
	}
	start := s.Now()
	tok, err := broker.Fetch(ctx, client, s.Protocol, s.Call)
	if err != nil {
		return Obtained{}, err
	}
	now := s.Now()
	if tok.Expiry.IsZero() {
		tok.Expiry, tok.ExpirySource = now.Add(s.DefaultTTL), "default-ttl"
	}
	if limit := now.Add(s.MaxTTL); tok.Expiry.After(limit) {
		s.Log.Info("broker's expiry is beyond --max-ttl; capped", "target", s.Call.Target, "stated", tok.Expiry, "capped", limit)
		tok.Expiry, tok.ExpirySource = limit, "max-ttl"
	}
	s.Log.Debug("broker answered", "target", s.Call.Target, "latency", now.Sub(start), "expiry", tok.Expiry, "expiry_from", tok.ExpirySource)
	if !now.Before(tok.Expiry) {
		return Obtained{}, fmt.Errorf("broker issued a token for target %q that expired at %s; check the broker's clock and token lifetime", s.Call.Target, tok.Expiry.UTC().Format(time.RFC3339))
	}
	return Obtained{Token: tok, At: now}, nil
}

// source builds the Source of one call. The cache is opened here; a cache
// that cannot be opened leaves the call uncached, said under -v.
func (o Options) source(p broker.Chosen, pod podToken, info plugin.ExecInfo, env Env) (*Source, error) {
	key, err := o.cacheKey(p, pod, info)
	if err != nil {
		return nil, err
	}
	s := &Source{
		Key: key, Protocol: p,
		Call:   broker.Call{Target: o.Target, PodToken: pod.value, Secrets: env.Secrets},
		Client: func() (*broker.Client, error) { return broker.New(o.brokerConfig(env.Log)) },
		Now:    env.Now, Margin: o.RefreshMargin, DefaultTTL: o.DefaultTTL, MaxTTL: o.MaxTTL,
		LockWait: o.Timeout / 2, // a stuck holder still leaves time to ask the broker ourselves
		Caller:   env.Caller, Log: env.Log,
	}
	if o.NoCache {
		return s, nil
	}
	if s.Cache, err = cache.Open(o.CacheDir); err != nil {
		env.Log.Info("cache unusable, continuing without it", "reason", err.Error())
	}
	return s, nil
}

// cacheKey identifies the entry for this call: broker, target, API server,
// identity and every protocol setting that changes the token. The identity
// is the pod token's issuer and subject, or a hash of an opaque token: never
// the token.
func (o Options) cacheKey(p broker.Chosen, pod podToken, info plugin.ExecInfo) (cache.Key, error) {
	identity, subject := pod.claims.Issuer+"\n"+pod.claims.Subject, pod.claims.Subject
	if subject == "" {
		sum := sha256.Sum256([]byte(pod.value))
		identity, subject = "sha256:"+hex.EncodeToString(sum[:]), "(opaque pod token)"
	}
	id, err := json.Marshal([]any{o.BrokerURL, o.Target, info.Server, identity, json.RawMessage(p.Identity)})
	if err != nil {
		return cache.Key{}, fmt.Errorf("encode cache key: %w", err)
	}
	return cache.Key{ID: id, Label: cache.Label{"target": o.Target, "broker": brokerHost(o.BrokerURL), "identity": subject, "protocol": p.Name}}, nil
}

// brokerHost is the host of a broker URL, for listings; it never includes
// credentials or query parameters.
func brokerHost(brokerURL string) string {
	u, err := url.Parse(brokerURL)
	if err != nil || u.Host == "" {
		return "(unparsable)"
	}
	return u.Host
}
