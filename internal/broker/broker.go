// Package broker asks a token broker for a short-lived token for a named
// remote cluster, trading the caller's pod token for it. Each broker API is
// one Protocol in one file; Client carries the HTTP exchange they share. It
// knows nothing of kubectl, client-go or caching.
package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/brokercred/brokercred/internal/secret"
)

// maxBody caps how much of a broker answer is read. Tokens are a few KiB.
const maxBody = 256 << 10

// Config says which broker to ask and how to reach it.
type Config struct {
	// URL is the broker endpoint (for Vault: its address). It must be https,
	// or http to a loopback address when InsecureHTTP is set.
	URL string
	// CAFile is a PEM bundle trusted for the broker; empty means the system roots.
	CAFile string
	// InsecureHTTP allows an http:// URL to a loopback address, never
	// through a proxy, for local testing only.
	InsecureHTTP bool
	// RetryMax is how many times a failed request is retried (network errors,
	// 429, 5xx); the caller's context bounds the whole. Zero means no retry.
	RetryMax int
	// Log receives one debug line per HTTP answer and per retry (status,
	// attempt; never a header or a body). Nil discards them.
	Log *slog.Logger
}

// Token is what a broker issued.
type Token struct {
	// Value is the token itself. Never log it.
	Value string
	// Expiry is when the token stops working; zero when neither the broker's
	// answer nor the token says.
	Expiry time.Time
	// ExpirySource says where Expiry came from: "answer", "expires_in",
	// "ttl", "jwt" or "" (unknown).
	ExpirySource string
}

// Client sends requests to one broker: TLS as configured, retries within the
// caller's deadline, no redirects, answers read up to a cap.
type Client struct {
	cfg  Config
	url  *url.URL
	http *retryablehttp.Client
}

// New checks cfg and builds a client for it. It reads CAFile once.
func New(cfg Config) (*Client, error) {
	u, err := parseBrokerURL(cfg.URL, cfg.InsecureHTTP)
	if err != nil {
		return nil, err
	}
	transport, err := newTransport(cfg.CAFile, u.Scheme)
	if err != nil {
		return nil, err
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: transport, CheckRedirect: refuseRedirect}
	rc.Logger = nil
	rc.RetryMax = cfg.RetryMax
	rc.RetryWaitMin = 100 * time.Millisecond
	rc.RetryWaitMax = 2 * time.Second
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.CheckRetry = retryWithinDeadline
	if cfg.Log != nil {
		rc.RequestLogHook = func(_ retryablehttp.Logger, _ *http.Request, attempt int) {
			if attempt > 0 {
				cfg.Log.Debug("broker retry", "attempt", attempt)
			}
		}
		rc.ResponseLogHook = func(_ retryablehttp.Logger, resp *http.Response) {
			cfg.Log.Debug("broker status", "status", resp.StatusCode)
		}
	}
	return &Client{cfg: cfg, url: u, http: rc}, nil
}

// Host is the broker's host and port, for messages.
func (c *Client) Host() string { return c.url.Host }

// parseBrokerURL accepts an absolute https URL, or http to a loopback
// address when insecure is set.
func parseBrokerURL(raw string, insecure bool) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("no broker URL; set --broker-url or BROKERCRED_BROKER_URL")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("broker URL %q is not an absolute URL; set --broker-url to https://host/path", redactURL(raw))
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && insecure && isLoopback(u.Hostname()):
	case u.Scheme == "http" && insecure:
		return nil, fmt.Errorf("--insecure-http allows only a loopback broker, not %q; use https for any other host", u.Host)
	case u.Scheme == "http":
		return nil, fmt.Errorf("broker URL %s is plain http and would expose the pod token; use https, or --insecure-http for a loopback test broker only", u.Redacted())
	default:
		return nil, fmt.Errorf("broker URL scheme %q is not supported; use https", u.Scheme)
	}
	return u, nil
}

// isLoopback reports whether host names this machine without DNS: localhost
// or a loopback IP address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides any password in a URL that may not parse.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

// newTransport trusts caFile (or the system roots) and, for plain http,
// never uses a proxy: a loopback test broker must not receive the pod token
// through anybody else.
func newTransport(caFile, scheme string) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if scheme == "http" {
		t.Proxy = nil
	}
	if caFile == "" {
		return t, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read broker CA %s: %w; set --ca-file to a readable PEM bundle", caFile, errors.Unwrap(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("broker CA %s holds no PEM certificate; set --ca-file to the CA that signed the broker's certificate", caFile)
	}
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}

// retryWithinDeadline is retryablehttp's default policy, except that it
// gives up at once when the broker asks (Retry-After) for a longer wait than
// ctx has left: the last answer then explains the failure, instead of a
// timeout after a wait that could not succeed.
func retryWithinDeadline(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, rerr := retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	if !retry || resp == nil {
		return retry, rerr
	}
	// With no minimum or maximum, DefaultBackoff is the Retry-After of a 429
	// or 503, and zero otherwise.
	wait := retryablehttp.DefaultBackoff(0, 0, 0, resp)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		return false, nil
	}
	return retry, rerr
}

// refuseRedirect stops at the first redirect, so the pod token is never sent
// anywhere but the configured broker URL.
func refuseRedirect(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}

// newRequest builds a request to the broker URL with path appended (empty:
// the URL as configured), carrying body when it is not nil.
func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*retryablehttp.Request, error) {
	u := *c.url
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	var rawBody any
	if body != nil {
		rawBody = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), rawBody)
	if err != nil {
		return nil, fmt.Errorf("build broker request: %w", err)
	}
	req.Header.Set("User-Agent", "brokercred")
	return req, nil
}

// roundTrip sends req, with retries, and reads the whole capped answer.
func (c *Client) roundTrip(ctx context.Context, req *retryablehttp.Request) (*http.Response, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := c.readAnswer(ctx, resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, body, nil
}

// readAnswer reads a broker's answer body, at most maxBody bytes. A body
// cut short by the deadline is an error, never a shorter answer: the HTTP/1
// transport may end such a body with a clean EOF once ctx is done.
func (c *Client) readAnswer(ctx context.Context, r io.Reader) ([]byte, error) {
	body, err := readCapped(r)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("broker %s did not finish its answer in time; check the broker's health, or raise --timeout", c.url.Host)
	}
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("broker %s answered with a body larger than %d KiB, which is no token; check --broker-url points at the token API", c.url.Host, maxBody>>10)
	}
	if err != nil {
		return nil, fmt.Errorf("read broker answer from %s: %w; check the broker's health", c.url.Host, err)
	}
	return body, nil
}

// errTooLarge is returned by readCapped for a body over maxBody.
var errTooLarge = errors.New("answer is too large")

// readCapped reads at most maxBody bytes and fails on more.
func readCapped(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, errTooLarge
	}
	return body, nil
}

// transportError explains a failure to get any HTTP answer at all.
func (c *Client) transportError(ctx context.Context, err error) error {
	host := c.url.Host
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("broker %s did not answer in time; check it is up and reachable, or raise --timeout", host)
	}
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invalidErr x509.CertificateInvalidError
	switch {
	case errors.As(err, &hostErr):
		return fmt.Errorf("broker %s presented a certificate for another host name; fix --broker-url to a name the certificate covers", host)
	case errors.As(err, &authErr):
		return fmt.Errorf("broker %s presented a certificate from an unknown authority; set --ca-file to the CA that signed it", host)
	case errors.As(err, &invalidErr):
		return fmt.Errorf("broker %s presented an invalid certificate (%s); renew the broker's certificate or fix the clock", host, invalidReason(invalidErr))
	case errors.As(err, &certErr):
		return fmt.Errorf("broker %s TLS certificate not trusted: %v; set --ca-file to the CA that signed it", host, certErr.Err)
	}
	return fmt.Errorf("reach broker %s: %v; check the URL, DNS and network policy", host, rootCause(err))
}

func invalidReason(err x509.CertificateInvalidError) string {
	if err.Reason == x509.Expired {
		return "expired or not yet valid"
	}
	return err.Error()
}

// rootCause strips the url.Error wrapper, which repeats the full URL.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError explains a non-2xx broker answer by its status alone; hint is
// the protocol's advice for a 404 (where its endpoint lives).
func (c *Client) statusError(resp *http.Response, call Call, hint string) error {
	host, code := c.url.Host, resp.StatusCode
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("broker refused the identity %s for target %q (HTTP %d); check the broker's allow rule for this ServiceAccount and that the pod token's audience is one the broker accepts",
			describeSubject(call.PodToken), call.Target, code)
	case code == http.StatusNotFound:
		return fmt.Errorf("broker %s has no such endpoint (HTTP 404); %s", host, hint)
	case code >= 300 && code < 400:
		return fmt.Errorf("broker %s redirected (HTTP %d) to %q; set --broker-url to the final https URL", host, code, redirectHost(resp))
	case code == http.StatusTooManyRequests:
		return fmt.Errorf("broker %s is rate limiting (HTTP 429) and did not recover within --timeout; retry later or raise --timeout", host)
	case code >= 500:
		return fmt.Errorf("broker %s failed (HTTP %d) after retries; check the broker's health and logs", host, code)
	}
	return fmt.Errorf("broker %s answered HTTP %d for target %q; check --broker-url, --target and the broker's logs", host, code, call.Target)
}

// redirectHost is where a redirect points, scheme and host only.
func redirectHost(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return "an unknown location"
	}
	return loc.Scheme + "://" + loc.Host
}

// describeSubject names the pod identity for an error: its sub claim, which
// is a ServiceAccount name and not a secret.
func describeSubject(podToken string) string {
	c, err := ParseClaims(podToken)
	if err != nil || c.Subject == "" {
		return "the pod token's identity"
	}
	return fmt.Sprintf("%q", c.Subject)
}

// Fetch asks the broker at c, in protocol p, for a token for call.Target,
// and checks what came back whatever the protocol: a usable token that
// holds none of the call's secrets (the pod token, a client secret, a
// broker session token: an endpoint that echoes its request would have
// them printed, cached and sent to the remote cluster), its expiry the
// earlier of what the broker stated and the token's own exp claim. The
// issued token joins call.Secrets.
func Fetch(ctx context.Context, c *Client, p Chosen, call Call) (Token, error) {
	if call.Target == "" {
		return Token{}, errors.New("no target cluster; set --target or BROKERCRED_TARGET")
	}
	if call.Secrets == nil {
		call.Secrets = new(secret.Set)
	}
	call.Secrets.Add(call.PodToken)
	tok, err := p.protocol.fetch(ctx, c, call)
	if err != nil {
		return Token{}, err
	}
	switch {
	case call.PodToken != "" && strings.Contains(tok.Value, call.PodToken):
		return Token{}, fmt.Errorf("broker %s sent back the pod token itself instead of a token for target %q; --broker-url points at an endpoint that echoes its request: fix --broker-url", c.url.Host, call.Target)
	case call.Secrets.Within(tok.Value):
		return Token{}, fmt.Errorf("broker %s sent back a secret of this call (the client secret or the broker's session token) instead of a token for target %q; --broker-url points at an endpoint that echoes its request: fix --broker-url", c.url.Host, call.Target)
	}
	call.Secrets.Add(tok.Value)
	return earlierOfJWT(tok), nil
}

// earlierOfJWT lowers t's expiry to the token's own exp claim when that
// comes first: a token is dead at its exp, whatever its broker said.
func earlierOfJWT(t Token) Token {
	c, err := ParseClaims(t.Value)
	if err != nil || c.Expiry.IsZero() {
		return t
	}
	if t.Expiry.IsZero() || c.Expiry.Before(t.Expiry) {
		t.Expiry, t.ExpirySource = c.Expiry, "jwt"
	}
	return t
}

// Call is one request for a token: for whom, for what, and the secrets that
// must never be printed.
type Call struct {
	// Target is the remote cluster the token is for.
	Target string
	// PodToken is the caller's projected ServiceAccount token, its proof of
	// identity. Never log it.
	PodToken string
	// Secrets collects every secret the call handles (the pod token, a
	// client secret, a broker session token, the issued token), so that the
	// caller can scrub what it prints. Nil collects nothing.
	Secrets *secret.Set
	// Trace, when set, is told each step a protocol takes (login, token,
	// revoke, ...) and how it went, for doctor; err is nil for a step that
	// worked. Nil traces nothing.
	Trace func(step, detail string, err error)
}

// step tells call.Trace, when set, that the protocol step name finished
// with detail (what it did, never a secret) or err, and returns err.
func (call Call) step(name, detail string, err error) error {
	if call.Trace != nil {
		call.Trace(name, detail, err)
	}
	return err
}
