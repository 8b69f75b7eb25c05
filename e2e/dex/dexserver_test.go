package dex

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startTimeout bounds Dex's start: its signing key is generated on start.
const startTimeout = time.Minute

const (
	connectorID = "kubernetes"
	// podAudience is the projected token's audience. Dex does not check it
	// for token exchange; a real pod would still project a token for Dex
	// alone, so that it is good for nothing else.
	podAudience = "dex"
)

// dexClient is one of Dex's static clients.
type dexClient struct {
	ID           string   `json:"id"`
	Secret       string   `json:"secret,omitempty"`
	Name         string   `json:"name"`
	TrustedPeers []string `json:"trustedPeers,omitempty"`
}

// dexConfig is the part of Dex's config file (cmd/dex/config.go) the test
// sets. Dex reads YAML; JSON is YAML.
type dexConfig struct {
	Issuer  string `json:"issuer"`
	Storage struct {
		Type string `json:"type"`
	} `json:"storage"`
	Web struct {
		HTTPS   string `json:"https"`
		TLSCert string `json:"tlsCert"`
		TLSKey  string `json:"tlsKey"`
	} `json:"web"`
	Logger struct {
		Level  string `json:"level"`
		Format string `json:"format"`
	} `json:"logger"`
	OAuth2 struct {
		GrantTypes []string `json:"grantTypes"`
	} `json:"oauth2"`
	Expiry struct {
		IDTokens string `json:"idTokens"`
	} `json:"expiry"`
	StaticClients []dexClient    `json:"staticClients"`
	Connectors    []dexConnector `json:"connectors"`
}

type dexConnector struct {
	Type   string         `json:"type"`
	ID     string         `json:"id"`
	Name   string         `json:"name"`
	Config map[string]any `json:"config"`
}

// dex is a running Dex process and a counting reverse proxy in front of it
// that brokercred calls.
type dex struct {
	issuer   string // Dex's issuer URL, which its tokens carry
	proxyURL string // where brokercred sends the token exchange
	log      *syncBuffer
	exchange atomic.Int64 // token endpoint requests through the proxy
}

// tokenURL is the token endpoint brokercred calls, through the proxy.
func (d *dex) tokenURL() string { return d.proxyURL + "/dex/token" }

// startDex writes cfg (with issuer, web and storage filled in) to dir and
// runs Dex with it until the test ends.
func startDex(t *testing.T, p *pki, dir string, cfg dexConfig) *dex {
	t.Helper()
	addr := freeAddr(t)
	d := &dex{issuer: "https://" + addr + "/dex", log: &syncBuffer{}}
	cfg.Issuer = d.issuer
	cfg.Storage.Type = "memory"
	cfg.Web.HTTPS, cfg.Web.TLSCert, cfg.Web.TLSKey = addr, p.certFile, p.keyFile
	cfg.Logger.Level, cfg.Logger.Format = "debug", "json"
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "dex.yaml")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, dexBin, "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start dex: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("dex log:\n%s", d.log.String())
		}
	})

	// Ready once discovery answers and the first signing key is published.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS()}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			t.Fatalf("dex exited during start: %v", cmd.ProcessState)
		default:
		}
		if ok(client, d.issuer+"/.well-known/openid-configuration") && ok(client, d.issuer+"/keys") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dex not ready at %s within %s", d.issuer, startTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The proxy counts what reaches Dex's token endpoint.
	upstream, err := url.Parse("https://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		Transport: &http.Transport{TLSClientConfig: p.clientTLS()},
	}
	proxy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dex/token" {
			d.exchange.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	proxy.TLS = p.serverTLS()
	proxy.StartTLS()
	t.Cleanup(proxy.Close)
	d.proxyURL = proxy.URL
	return d
}

func ok(c *http.Client, u string) bool {
	resp, err := c.Get(u)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// freeAddr is a loopback address with a port free a moment ago, for Dex,
// which takes its listen address from its config.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// syncBuffer collects a process's output from its copy goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logHas reports whether Dex logged a line holding every one of parts.
func (d *dex) logHas(parts ...string) bool {
	for line := range strings.Lines(d.log.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
