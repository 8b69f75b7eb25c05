package credential

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/cache"
	"github.com/brokercred/brokercred/internal/plugin"
)

// Check is one line of a doctor report. Detail never holds a token.
type Check struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
}

// Report is what `brokercred doctor` found, in the order it looked.
type Report struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

// Doctor checks, in order, everything a token call depends on: the pod
// token, the target, the way to the broker, the cache, and finally a real
// token request. It describes what it finds without printing any token, and
// skips the checks that depend on one that failed.
func Doctor(ctx context.Context, o Options, env Env) Report {
	env = env.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var r Report
	pod, podErr := readPodToken(o.TokenFile, env.Now())
	env.Secrets.Add(pod.value)
	r.add("pod token", describePodToken(o.TokenFile, pod, env.Now()), podErr)

	info, err := plugin.ReadExecInfo(env.ExecInfo)
	if err == nil {
		o.Target, err = o.resolveTarget(info)
	}
	targetErr := err
	r.add("target", o.Target, targetErr)

	protocol, err := broker.Choose(o.Protocol, o.Settings)
	r.add("protocol", describeProtocol(protocol), err)
	if err != nil {
		return r.finish(env)
	}
	brokerOK := true
	for _, s := range broker.Probe(ctx, o.brokerConfig(nil), protocol) {
		r.add(s.Name, s.Detail, s.Err)
		brokerOK = brokerOK && s.Err == nil
	}

	if podErr != nil || targetErr != nil {
		r.skip("cache", "needs the pod token and the target")
		r.skip("token request", "needs the pod token and the target")
		return r.finish(env)
	}
	r.add(o.checkCache(protocol, pod, info, env.Now()))
	if !brokerOK {
		r.skip("token request", "the broker cannot be reached")
		return r.finish(env)
	}
	r.checkTokenRequest(ctx, o, protocol, pod, env)
	return r.finish(env)
}

// describeProtocol names the protocol and the settings that shape its
// request: never a secret, only names and paths.
func describeProtocol(p broker.Chosen) string {
	if p.Name == "" {
		return ""
	}
	return fmt.Sprintf("%s, settings %s", p.Name, p.Identity)
}

func (r *Report) add(name, detail string, err error) {
	if err != nil {
		detail = err.Error()
	}
	r.Checks = append(r.Checks, Check{Name: name, OK: err == nil, Detail: detail})
}

func (r *Report) skip(name, why string) {
	r.Checks = append(r.Checks, Check{Name: name, Skipped: true, Detail: "skipped: " + why})
}

// finish settles OK and scrubs every detail of the call's secrets: a
// report is printed, and must hold no token even where a broker quoted one.
func (r *Report) finish(env Env) Report {
	r.OK = true
	for i, c := range r.Checks {
		r.OK = r.OK && (c.OK || c.Skipped)
		r.Checks[i].Detail = env.Secrets.Scrub(c.Detail)
	}
	return *r
}

// Failed counts the checks that failed.
func (r Report) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if !c.OK && !c.Skipped {
			n++
		}
	}
	return n
}

func describePodToken(path string, pod podToken, now time.Time) string {
	c := pod.claims
	if c.Subject == "" {
		return path + ": not a JWT; the broker alone can judge it"
	}
	return fmt.Sprintf("%s: JWT for %s, issuer %s, audience %s, expires %s", path, c.Subject, c.Issuer,
		strings.Join(c.Audience, ","), describeExpiry(c.Expiry, now))
}

func describeExpiry(exp, now time.Time) string {
	if exp.IsZero() {
		return "never (no exp)"
	}
	return fmt.Sprintf("%s (in %s)", exp.UTC().Format(time.RFC3339), exp.Sub(now).Round(time.Second))
}

// checkCache reports whether the cache dir is usable and what it holds
// for this call's key.
func (o Options) checkCache(p broker.Chosen, pod podToken, info plugin.ExecInfo, now time.Time) (string, string, error) {
	if o.NoCache {
		return "cache", "off (--no-cache): every call asks the broker", nil
	}
	c, err := cache.Open(o.CacheDir)
	if err != nil {
		return "cache", "", fmt.Errorf("cache dir is not usable (%v); mount an emptyDir there or set --cache-dir (calls still work, uncached)", err)
	}
	defer c.Close()
	if err := probeWritable(c.Dir()); err != nil {
		return "cache", "", fmt.Errorf("cache dir %s is not writable (%v); mount an emptyDir there or set --cache-dir (calls still work, uncached)", c.Dir(), err)
	}
	key, err := o.cacheKey(p, pod, info)
	if err != nil {
		return "cache", "", err
	}
	e, err := c.Get(key, now)
	if err != nil {
		return "cache", fmt.Sprintf("%s is writable; no usable entry for this target and identity (%v)", c.Dir(), err), nil
	}
	return "cache", fmt.Sprintf("%s is writable; entry for this target and identity expires %s", c.Dir(), describeExpiry(e.Expiry, now)), nil
}

func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// checkTokenRequest asks the broker for a real token, uncached: one check
// per step the protocol takes, then one that describes the token.
func (r *Report) checkTokenRequest(ctx context.Context, o Options, p broker.Chosen, pod podToken, env Env) {
	o.NoCache, env.Caller = true, ""
	src, err := o.source(p, pod, plugin.ExecInfo{}, env)
	if err != nil {
		r.add("token request", "", err)
		return
	}
	stepFailed := false
	src.Call.Trace = func(step, detail string, err error) {
		r.add(step, detail, err)
		stepFailed = stepFailed || err != nil
	}
	tok, err := src.Token(ctx)
	switch {
	case err != nil && stepFailed:
		r.skip("token request", "the step above failed")
		return
	case err != nil:
		r.add("token request", "", err)
		return
	}
	detail := fmt.Sprintf("broker issued a token for %s, expiring %s (from %s)", o.Target, describeExpiry(tok.Expiry, env.Now()), tok.ExpirySource)
	if c, err := broker.ParseClaims(tok.Value); err == nil {
		detail += fmt.Sprintf("; subject %s, audience %s, issuer %s", c.Subject, strings.Join(c.Audience, ","), c.Issuer)
		if c.FederatedUserID != "" {
			detail += fmt.Sprintf("; Dex vouches for %s (Argo CD's RBAC subject with the federated:id scope)", c.FederatedUserID)
		}
	}
	r.add("token request", detail, nil)
}

// WriteReport prints r as text (one line per check, ✓ ✗ or -) or as JSON.
func WriteReport(w io.Writer, r Report, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	for _, c := range r.Checks {
		mark := "✓"
		switch {
		case c.Skipped:
			mark = "-"
		case !c.OK:
			mark = "✗"
		}
		if _, err := fmt.Fprintf(w, "%s %-13s %s\n", mark, c.Name, c.Detail); err != nil {
			return err
		}
	}
	return nil
}
