// Package credential obtains the remote cluster token for one credential call:
// it settles the target from the flags and client-go's cluster info, reads
// the pod token, and serves the token from the cache while it is fresh or
// from the broker under the cache key's lock. Doctor checks the same path
// step by step.
package credential

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/plugin"
	"github.com/brokercred/brokercred/internal/secret"
)

// Options are the settings of one credential call, shared by every command
// that talks to the broker. The struct tags declare them as CLI flags; the
// protocols' own settings come in as flag groups from broker.Settings.
type Options struct {
	BrokerURL     string        `name:"broker-url" env:"BROKERCRED_BROKER_URL" placeholder:"URL" help:"Full https URL of the broker endpoint (Vault: its address)."`
	Target        string        `name:"target" env:"BROKERCRED_TARGET" placeholder:"NAME" help:"Name of the remote cluster the token is for."`
	Protocol      string        `name:"protocol" env:"BROKERCRED_PROTOCOL" default:"get-target-token" enum:"${protocols}" help:"Broker protocol: ${protocol_names}."`
	TokenFile     string        `name:"token-file" env:"BROKERCRED_TOKEN_FILE" default:"/var/run/secrets/kubernetes.io/serviceaccount/token" placeholder:"FILE" help:"Projected pod token, read fresh on every call."`
	CAFile        string        `name:"ca-file" env:"BROKERCRED_CA_FILE" placeholder:"FILE" help:"PEM bundle trusted for the broker (default: system roots)."`
	Timeout       time.Duration `name:"timeout" env:"BROKERCRED_TIMEOUT" default:"10s" help:"Whole budget for the call: cache lock wait, broker request and retries."`
	RefreshMargin time.Duration `name:"refresh-margin" env:"BROKERCRED_REFRESH_MARGIN" default:"10s" help:"Report expiry this much early so client-go asks again before the token dies."`
	DefaultTTL    time.Duration `name:"default-ttl" env:"BROKERCRED_DEFAULT_TTL" default:"60s" help:"Token lifetime assumed when neither the broker nor the token says."`
	MaxTTL        time.Duration `name:"max-ttl" env:"BROKERCRED_MAX_TTL" default:"24h" help:"Longest a token is cached and reported valid, whatever the broker says."`
	InsecureHTTP  bool          `name:"insecure-http" env:"BROKERCRED_INSECURE_HTTP" help:"Allow an http:// broker URL on a loopback address (local testing only; never through a proxy)."`
	CacheDir      string        `name:"cache-dir" env:"BROKERCRED_CACHE_DIR" placeholder:"DIR" help:"Token cache directory; brokercred keeps a private subdirectory per user in it (default: $XDG_CACHE_HOME/brokercred)."`
	NoCache       bool          `name:"no-cache" env:"BROKERCRED_NO_CACHE" help:"Ask the broker on every call."`

	ClusterConfigKey string   `name:"cluster-config-key" env:"BROKERCRED_CLUSTER_CONFIG_KEY" default:"clusterName" placeholder:"KEY" help:"Key of the cluster's exec config (provideClusterInfo) that names the target when --target is not set."`
	AllowedTargets   []string `name:"allowed-targets" env:"BROKERCRED_ALLOWED_TARGETS" placeholder:"GLOB[=SERVER]" help:"Refuse any target that matches none of these shell globs; GLOB=https://server also pins the target to that API server (default: allow all)."`

	broker.Settings `embed:""`
}

// KongVars are the variables Options' tags use: the protocols --protocol
// accepts (aliases included) and their API names, from the registry.
func KongVars() map[string]string {
	return map[string]string{
		"protocols":      strings.Join(broker.Accepted(), ","),
		"protocol_names": strings.Join(broker.Names(), ", "),
	}
}

// retryMax is how often a failed broker request is retried within Timeout.
const retryMax = 4

// Env is what Run reads from its surroundings, so tests need no globals.
type Env struct {
	ExecInfo string           // value of KUBERNETES_EXEC_INFO; empty when unset
	Stdout   io.Writer        // receives the credential and nothing else
	Log      *slog.Logger     // diagnostics; nil discards them
	Now      func() time.Time // nil means time.Now
	// Caller names the client the credential is for (caller.Name: its
	// parent process as one program and exec configuration): a caller that
	// asks again while its token is fresh had it refused. Only client-go's
	// calls are judged so (it sets ExecInfo, and comes back early only after
	// a 401); a person or a script running brokercred by hand is not. Empty
	// turns that detection off.
	Caller string
	// Secrets collects the secrets of the call, for the caller to scrub
	// what it prints. Nil collects nothing.
	Secrets *secret.Set
}

// Run prints one ExecCredential for o's target: from the cache while fresh,
// otherwise from the broker, then cached for the next process.
func Run(ctx context.Context, o Options, env Env) error {
	env = env.withDefaults()
	cred, err := Get(ctx, o, env)
	if err != nil {
		return err
	}
	reported := reportedExpiry(cred.At, cred.Expiry, o.RefreshMargin)
	env.Log.Debug("credential", "target", cred.Target, "expirationTimestamp", reported, "token_expiry", cred.Expiry, "expiry_from", cred.ExpirySource)
	return plugin.WriteCredential(env.Stdout, cred.APIVersion, cred.Value, reported)
}

// Credential is the token of one call, with what the call settled on the
// way: its target and the ExecCredential version client-go asked for
// (empty when brokercred was not run by client-go).
type Credential struct {
	Obtained
	Target     string
	APIVersion string
}

// Get returns a fresh token for o's target, the way Run serves it: from the
// cache while fresh, otherwise from the broker, then cached. Programs that
// are not client-go (print-token, run) take their token here.
func Get(ctx context.Context, o Options, env Env) (Credential, error) {
	env = env.withDefaults()
	info, err := plugin.ReadExecInfo(env.ExecInfo)
	if err != nil {
		return Credential{}, err
	}
	if env.ExecInfo == "" {
		env.Caller = ""
	}
	if o.Target, err = o.resolveTarget(info); err != nil {
		return Credential{}, err
	}
	protocol, err := broker.Choose(o.Protocol, o.Settings)
	if err != nil {
		return Credential{}, err
	}
	pod, err := readPodToken(o.TokenFile, env.Now())
	if err != nil {
		return Credential{}, err
	}
	env.Secrets.Add(pod.value)
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	src, err := o.source(protocol, pod, info, env)
	if err != nil {
		return Credential{}, err
	}
	if src.Cache != nil {
		defer src.Cache.Close()
	}
	tok, err := src.Token(ctx)
	if err != nil {
		return Credential{}, err
	}
	return Credential{Obtained: tok, Target: o.Target, APIVersion: info.APIVersion}, nil
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
	if e.Secrets == nil {
		e.Secrets = new(secret.Set)
	}
	return e
}

func (o Options) brokerConfig(log *slog.Logger) broker.Config {
	return broker.Config{URL: o.BrokerURL, CAFile: o.CAFile, InsecureHTTP: o.InsecureHTTP, RetryMax: retryMax, Log: log}
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
