// Package broker asks a token broker for a short-lived token for a named
// remote cluster, trading the caller's pod token for it. It knows nothing of
// kubectl, client-go or caching.
package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// ProtocolGet is OpenUnison's get-target-token API: GET <url>?targetName=<target>
// with the pod token as a Bearer credential.
const ProtocolGet = "get"

// maxBody caps how much of a broker answer is read. Tokens are a few KiB.
const maxBody = 256 << 10

// Config says which broker to ask and how to reach it.
type Config struct {
	// URL is the broker endpoint. It must be https unless InsecureHTTP is set.
	URL string
	// Protocol is the broker's API; empty means ProtocolGet.
	Protocol string
	// CAFile is a PEM bundle trusted for the broker; empty means the system roots.
	CAFile string
	// InsecureHTTP allows an http:// URL, for local testing only.
	InsecureHTTP bool
	// RetryMax is how many times a failed request is retried (network errors,
	// 429, 5xx); the caller's context bounds the whole. Zero means no retry.
	RetryMax int
	// Exchange configures ProtocolTokenExchange; other protocols ignore it.
	Exchange Exchange
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
	// ExpirySource says where Expiry came from: "answer", "jwt" or "" (unknown).
	ExpirySource string
}

// Client fetches tokens from one broker.
type Client struct {
	cfg  Config
	url  *url.URL
	http *retryablehttp.Client
}

// New checks cfg and builds a client for it. It reads CAFile once.
func New(cfg Config) (*Client, error) {
	if cfg.Protocol == "" {
		cfg.Protocol = ProtocolGet
	}
	if cfg.Protocol != ProtocolGet && cfg.Protocol != ProtocolTokenExchange {
		return nil, fmt.Errorf("unknown protocol %q; set --protocol to %q or %q", cfg.Protocol, ProtocolGet, ProtocolTokenExchange)
	}
	u, err := parseBrokerURL(cfg.URL, cfg.InsecureHTTP)
	if err != nil {
		return nil, err
	}
	transport, err := newTransport(cfg.CAFile)
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

// parseBrokerURL accepts an absolute https URL, or http when insecure is set.
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
	case u.Scheme == "http" && insecure:
	case u.Scheme == "http":
		return nil, fmt.Errorf("broker URL %s is plain http and would expose the pod token; use https, or --insecure-http for local tests only", u.Redacted())
	default:
		return nil, fmt.Errorf("broker URL scheme %q is not supported; use https", u.Scheme)
	}
	return u, nil
}

// redactURL hides any password in a URL that may not parse.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

func newTransport(caFile string) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
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

// Fetch asks the broker for a token for target, proving the caller's identity
// with subjectToken (the pod's ServiceAccount token).
func (c *Client) Fetch(ctx context.Context, target, subjectToken string) (Token, error) {
	if target == "" {
		return Token{}, errors.New("no target cluster; set --target or BROKERCRED_TARGET")
	}
	if c.cfg.Protocol == ProtocolTokenExchange {
		return c.exchange(ctx, target, subjectToken)
	}
	req, err := c.newGetRequest(ctx, target, subjectToken)
	if err != nil {
		return Token{}, err
	}
	resp, body, err := c.roundTrip(ctx, req)
	if err != nil {
		return Token{}, err
	}
	if resp.StatusCode/100 != 2 {
		return Token{}, statusError(resp, c.url.Host, target, subjectToken)
	}
	return parseAnswer(body, resp.Header.Get("Content-Type"), c.url.Host)
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

func (c *Client) newGetRequest(ctx context.Context, target, subjectToken string) (*retryablehttp.Request, error) {
	u := *c.url
	q := u.Query()
	q.Set("targetName", target)
	u.RawQuery = q.Encode()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build broker request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+subjectToken)
	req.Header.Set("Accept", "application/json, text/plain")
	req.Header.Set("User-Agent", "brokercred")
	return req, nil
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
