// Package plugin speaks client-go's exec credential protocol: it reads the
// pod token, finds a fresh token in the cache or asks the broker, and prints
// an ExecCredential whose expirationTimestamp makes client-go come back in time.
package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/adrg/xdg"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/cache"
)

// Options are the settings of one credential call, shared by every command
// that talks to the broker. The struct tags declare them as CLI flags.
type Options struct {
	BrokerURL     string        `name:"broker-url" env:"BROKERCRED_BROKER_URL" placeholder:"URL" help:"Full https URL of the broker endpoint."`
	Target        string        `name:"target" env:"BROKERCRED_TARGET" placeholder:"NAME" help:"Name of the remote cluster the token is for."`
	Protocol      string        `name:"protocol" env:"BROKERCRED_PROTOCOL" default:"get" enum:"get,token-exchange" help:"Broker protocol: get (OpenUnison get-target-token) or token-exchange (RFC 8693)."`
	TokenFile     string        `name:"token-file" env:"BROKERCRED_TOKEN_FILE" default:"/var/run/secrets/kubernetes.io/serviceaccount/token" placeholder:"FILE" help:"Projected pod token, read fresh on every call."`
	CAFile        string        `name:"ca-file" env:"BROKERCRED_CA_FILE" placeholder:"FILE" help:"PEM bundle trusted for the broker (default: system roots)."`
	Timeout       time.Duration `name:"timeout" env:"BROKERCRED_TIMEOUT" default:"10s" help:"Whole budget for the call: cache lock wait, broker request and retries."`
	RefreshMargin time.Duration `name:"refresh-margin" env:"BROKERCRED_REFRESH_MARGIN" default:"10s" help:"Report expiry this much early so client-go asks again before the token dies."`
	DefaultTTL    time.Duration `name:"default-ttl" env:"BROKERCRED_DEFAULT_TTL" default:"60s" help:"Token lifetime assumed when neither the broker nor the token says."`
	InsecureHTTP  bool          `name:"insecure-http" env:"BROKERCRED_INSECURE_HTTP" help:"Allow an http:// broker URL (local testing only)."`
	CacheDir      string        `name:"cache-dir" env:"BROKERCRED_CACHE_DIR" placeholder:"DIR" help:"Token cache directory (default: $XDG_CACHE_HOME/brokercred)."`
	NoCache       bool          `name:"no-cache" env:"BROKERCRED_NO_CACHE" help:"Ask the broker on every call."`

	TokenExchange `embed:"" group:"token-exchange"`

	ClusterConfigKey string   `name:"cluster-config-key" env:"BROKERCRED_CLUSTER_CONFIG_KEY" default:"clusterName" placeholder:"KEY" help:"Key of the cluster's exec config (provideClusterInfo) that names the target when --target is not set."`
	AllowedTargets   []string `name:"allowed-targets" env:"BROKERCRED_ALLOWED_TARGETS" placeholder:"GLOB" help:"Refuse any target that matches none of these shell globs (default: allow all)."`
}

// ResolvedCacheDir is CacheDir, or $XDG_CACHE_HOME/brokercred when it is empty.
func (o Options) ResolvedCacheDir() string {
	if o.CacheDir != "" {
		return o.CacheDir
	}
	return filepath.Join(xdg.CacheHome, "brokercred")
}

// retryMax is how often a failed broker request is retried within Timeout.
const retryMax = 4

// Env is what Run reads from its surroundings, so tests need no globals.
type Env struct {
	ExecInfo string           // value of KUBERNETES_EXEC_INFO; empty when unset
	Stdout   io.Writer        // receives the credential and nothing else
	Log      *slog.Logger     // diagnostics; nil discards them
	Now      func() time.Time // nil means time.Now
}

// Run prints one ExecCredential for o's target: from the cache while fresh,
// otherwise from the broker, then cached for the next process.
func Run(ctx context.Context, o Options, env Env) error {
	env = env.withDefaults()
	info, err := ReadExecInfo(env.ExecInfo)
	if err != nil {
		return err
	}
	if o.Target, err = o.resolveTarget(info); err != nil {
		return err
	}
	cfg := o.brokerConfig()
	cfg.Log = env.Log
	client, err := broker.New(cfg)
	if err != nil {
		return err
	}
	pod, err := readPodToken(o.TokenFile, env.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tok, err := o.token(ctx, client, pod, info, env)
	if err != nil {
		return err
	}
	reported := reportedExpiry(tok.Issued, tok.Expiry, o.RefreshMargin)
	env.Log.Debug("credential", "target", o.Target, "expirationTimestamp", reported, "token_expiry", tok.Expiry, "expiry_from", tok.ExpirySource)
	return WriteCredential(env.Stdout, info.APIVersion, tok.Value, reported)
}

func (e Env) withDefaults() Env {
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	return e
}

func (o Options) brokerConfig() broker.Config {
	return broker.Config{URL: o.BrokerURL, Protocol: o.Protocol, CAFile: o.CAFile, InsecureHTTP: o.InsecureHTTP, RetryMax: retryMax,
		Exchange: o.TokenExchange.settings()}
}

// token serves a fresh cached token, or fetches one under the key's lock so
// that concurrent processes make a single broker request.
func (o Options) token(ctx context.Context, client *broker.Client, pod podToken, info ExecInfo, env Env) (issuedToken, error) {
	if o.NoCache {
		env.Log.Debug("cache off")
		return o.fetch(ctx, client, pod, env)
	}
	c := cache.New(o.ResolvedCacheDir())
	key := o.cacheKey(pod, info)
	if tok, ok := o.cached(c, key, env); ok {
		return tok, nil
	}
	start := env.Now()
	// Wait for the lock at most half the budget, so that a stuck holder
	// still leaves time to ask the broker ourselves.
	lockCtx, cancel := context.WithTimeout(ctx, o.Timeout/2)
	unlock, err := c.Lock(lockCtx, key)
	cancel()
	if err != nil {
		if tok, ok := o.cached(c, key, env); ok {
			return tok, nil
		}
		env.Log.Info("cache unusable, continuing without it", "reason", err.Error())
		return o.fetch(ctx, client, pod, env)
	}
	defer unlock()
	env.Log.Debug("took cache lock", "waited", env.Now().Sub(start))
	if tok, ok := o.cached(c, key, env); ok { // another process filled it while we waited
		return tok, nil
	}
	tok, err := o.fetch(ctx, client, pod, env)
	if err != nil {
		return tok, err
	}
	if err := c.Put(key, tok.Value, tok.Expiry, tok.Issued); err != nil {
		env.Log.Info("cache write failed, token served uncached", "reason", err.Error())
	}
	return tok, nil
}

// cached returns the entry for key while it is still fresh by the refresh margin.
func (o Options) cached(c *cache.Cache, key cache.Key, env Env) (issuedToken, bool) {
	now := env.Now()
	e, reason := c.Get(key, now)
	// The wire format keeps whole seconds: judge freshness by what client-go
	// will read, or it would come back at once in the entry's last second.
	if reason == "" && now.Before(reportedExpiry(e.Created, e.Expiry, o.RefreshMargin).Truncate(time.Second)) {
		env.Log.Debug("cache hit", "target", key.Target, "expiry", e.Expiry)
		return issuedToken{Token: broker.Token{Value: e.Token, Expiry: e.Expiry, ExpirySource: "cache"}, Issued: e.Created}, true
	}
	if reason == "" {
		reason = "entry within the refresh margin"
	}
	env.Log.Debug("cache miss", "target", key.Target, "reason", reason)
	return issuedToken{}, false
}

// issuedToken is a broker token and when brokercred obtained it.
type issuedToken struct {
	broker.Token
	Issued time.Time
}

// fetch asks the broker and settles the token's expiry.
func (o Options) fetch(ctx context.Context, client *broker.Client, pod podToken, env Env) (issuedToken, error) {
	start := env.Now()
	tok, err := client.Fetch(ctx, o.Target, pod.value)
	if err != nil {
		return issuedToken{}, err
	}
	now := env.Now()
	if tok.Expiry.IsZero() {
		tok.Expiry, tok.ExpirySource = now.Add(o.DefaultTTL), "default-ttl"
	}
	env.Log.Debug("broker answered", "target", o.Target, "latency", now.Sub(start), "expiry", tok.Expiry, "expiry_from", tok.ExpirySource)
	if !now.Before(tok.Expiry) {
		return issuedToken{}, fmt.Errorf("broker issued a token for target %s that expired at %s; check the broker's clock and token lifetime", o.Target, tok.Expiry.UTC().Format(time.RFC3339))
	}
	return issuedToken{Token: tok, Issued: now}, nil
}

// reportedExpiry is the expirationTimestamp to give client-go for a token
// obtained at issued: margin before the real expiry, or half the token's
// lifetime when it lives shorter than twice the margin, so a short-lived
// token is still served for the first half of its life.
func reportedExpiry(issued, expiry time.Time, margin time.Duration) time.Time {
	if life := expiry.Sub(issued); life < 2*margin {
		margin = life / 2
	}
	return expiry.Add(-margin)
}

// cacheKey identifies the entry for this call. The identity is the pod
// token's issuer and subject, or a hash of an opaque token: never the token.
func (o Options) cacheKey(pod podToken, info ExecInfo) cache.Key {
	k := cache.Key{Broker: o.BrokerURL, Protocol: o.Protocol, Target: o.Target, Server: info.Server}
	if o.Protocol == broker.ProtocolTokenExchange {
		k.Request = o.TokenExchange.cacheRequest()
	}
	if pod.claims.Subject != "" {
		k.Identity = pod.claims.Issuer + "\n" + pod.claims.Subject
		k.Subject = pod.claims.Subject
		return k
	}
	sum := sha256.Sum256([]byte(pod.value))
	k.Identity = "sha256:" + hex.EncodeToString(sum[:])
	k.Subject = "(opaque pod token)"
	return k
}

// podToken is the pod's ServiceAccount token and what it says about itself.
type podToken struct {
	value  string
	claims broker.Claims // zero for a token that is not a JWT
}

// readPodToken reads the projected token fresh (the kubelet rotates it) and
// refuses one that is empty or already expired.
func readPodToken(path string, now time.Time) (podToken, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return podToken{}, fmt.Errorf("read pod token %s: no such file; is automountServiceAccountToken off? mount a projected ServiceAccount token or set --token-file", path)
	case errors.Is(err, fs.ErrPermission):
		return podToken{}, fmt.Errorf("read pod token %s: permission denied; run as a user that can read it (fsGroup) or set --token-file", path)
	case err != nil:
		return podToken{}, fmt.Errorf("read pod token %s: %v; set --token-file to the projected ServiceAccount token", path, errors.Unwrap(err))
	}
	value := strings.TrimSpace(string(data))
	if value == "" {
		return podToken{}, fmt.Errorf("pod token %s is empty; check the projected ServiceAccount token volume", path)
	}
	claims, _ := broker.ParseClaims(value) // an opaque token is allowed; the broker judges it
	if !claims.Expiry.IsZero() && !now.Before(claims.Expiry) {
		return podToken{}, fmt.Errorf("pod token %s expired at %s; the kubelet should rotate it: check the pod is running and the volume is a projected serviceAccountToken", path, claims.Expiry.UTC().Format(time.RFC3339))
	}
	return podToken{value: value, claims: claims}, nil
}
