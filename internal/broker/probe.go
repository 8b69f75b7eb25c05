package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Step is one stage on the way to the broker, as `brokercred doctor`
// reports it. Err is nil when the stage worked; it then carries a one-line
// cause and fix like every other brokercred error.
type Step struct {
	Name   string
	Detail string
	Err    error
}

// prober is a protocol whose broker URL is a server's address rather than an
// endpoint: an anonymous GET of probePath, appended to the URL, shows the
// broker is there.
type prober interface{ probePath() string }

// Probe walks the path to the broker one stage at a time (URL, DNS, TCP, TLS,
// HTTP) without sending any credential, and stops at the first stage that
// fails, so the last step names what to fix. p says where its endpoint
// lives when the broker answers 404, and what to ask (see prober).
func Probe(ctx context.Context, cfg Config, chosen Chosen) []Step {
	p := chosen.protocol
	u, err := parseBrokerURL(cfg.URL, cfg.InsecureHTTP)
	if err != nil {
		return []Step{{Name: "broker URL", Err: err}}
	}
	steps := []Step{{Name: "broker URL", Detail: u.Redacted()}}
	c := &Client{cfg: cfg, url: u}
	addr := net.JoinHostPort(u.Hostname(), portOf(u.Scheme, u.Port()))
	for _, stage := range []struct {
		name string
		run  func(context.Context) (string, error)
	}{
		{"broker DNS", func(ctx context.Context) (string, error) { return lookup(ctx, u.Hostname()) }},
		{"broker TCP", func(ctx context.Context) (string, error) { return dial(ctx, addr) }},
		{"broker TLS", func(ctx context.Context) (string, error) { return c.handshake(ctx, addr) }},
		{"broker HTTP", func(ctx context.Context) (string, error) { return c.anonymousGet(ctx, probePath(p), p.endpointHint()) }},
	} {
		if stage.name == "broker TLS" && u.Scheme != "https" {
			continue
		}
		detail, err := stage.run(ctx)
		steps = append(steps, Step{Name: stage.name, Detail: detail, Err: err})
		if err != nil {
			break
		}
	}
	return steps
}

// probePath is what Probe asks of p's broker: "" (the URL itself) unless p
// is a prober.
func probePath(p protocol) string {
	if pp, ok := p.(prober); ok {
		return pp.probePath()
	}
	return ""
}

func portOf(scheme, port string) string {
	switch {
	case port != "":
		return port
	case scheme == "http":
		return "80"
	}
	return "443"
}

func lookup(ctx context.Context, host string) (string, error) {
	if net.ParseIP(host) != nil {
		return host + " is an IP address; nothing to resolve", nil
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return "", fmt.Errorf("cannot resolve %s: %v; check the host name in --broker-url and the pod's DNS", host, rootCause(err))
	}
	return host + " resolves to " + strings.Join(addrs, ", "), nil
}

func dial(ctx context.Context, addr string) (string, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("cannot connect to %s: %v; check the broker is running and a NetworkPolicy or firewall lets this pod reach it", addr, rootCause(err))
	}
	defer conn.Close()
	return "connected to " + conn.RemoteAddr().String(), nil
}

// handshake checks the broker's certificate chain against --ca-file (or the
// system roots) and describes the certificate it presented.
func (c *Client) handshake(ctx context.Context, addr string) (string, error) {
	transport, err := newTransport(c.cfg.CAFile, c.url.Scheme)
	if err != nil {
		return "", err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if transport.TLSClientConfig != nil {
		conf = transport.TLSClientConfig.Clone()
	}
	conf.ServerName = c.url.Hostname()
	conn, err := (&tls.Dialer{Config: conf}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", c.transportError(ctx, err)
	}
	defer conn.Close()
	leaf := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	trust := "the system roots"
	if c.cfg.CAFile != "" {
		trust = c.cfg.CAFile
	}
	return fmt.Sprintf("certificate for %s issued by %q, valid until %s, trusted by %s",
		strings.Join(leaf.DNSNames, ","), leaf.Issuer.String(), leaf.NotAfter.UTC().Format(time.RFC3339), trust), nil
}

// anonymousGet asks the endpoint (the broker URL with path appended)
// without any credential: any HTTP answer but 404 shows the broker is there.
func (c *Client) anonymousGet(ctx context.Context, path, hint string) (string, error) {
	transport, err := newTransport(c.cfg.CAFile, c.url.Scheme)
	if err != nil {
		return "", err
	}
	u := *c.url
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("build broker request: %w", err)
	}
	client := &http.Client{Transport: transport, CheckRedirect: refuseRedirect}
	resp, err := client.Do(req)
	if err != nil {
		return "", c.transportError(ctx, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", fmt.Errorf("broker %s has no such endpoint (HTTP 404); %s", c.url.Host, hint)
	}
	return fmt.Sprintf("answered HTTP %d to a request without credentials: the endpoint is there", resp.StatusCode), nil
}
