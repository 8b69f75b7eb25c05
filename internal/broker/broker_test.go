package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

const subject = "system:serviceaccount:argocd:argocd-application-controller"

// getToken asks c for a token for target in get-target-token.
func getToken(ctx context.Context, c *broker.Client, target, pod string) (broker.Token, error) {
	p, err := broker.Choose("get-target-token", broker.Settings{})
	if err != nil {
		return broker.Token{}, err
	}
	return broker.Fetch(ctx, c, p, broker.Call{Target: target, PodToken: pod})
}

func newClient(t *testing.T, b *brokertest.Server) *broker.Client {
	t.Helper()
	c, err := broker.New(broker.Config{URL: b.URL, CAFile: b.CAFile(t.TempDir()), RetryMax: 3})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	return c
}

func TestFetchAnswerShapes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       brokertest.Options
		wantSource string
	}{
		{"raw token, expiry from jwt", brokertest.Options{Shape: brokertest.Raw}, "jwt"},
		{"json with expirationTimestamp", brokertest.Options{Shape: brokertest.JSON}, "answer"},
		{"exec credential", brokertest.Options{Shape: brokertest.ExecCredential}, "answer"},
		{"raw token without exp", brokertest.Options{Shape: brokertest.Raw, NoExp: true}, ""},
		{"json without expiry or exp", brokertest.Options{Shape: brokertest.JSON, NoExp: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.TTL = 2 * time.Minute
			b := brokertest.NewServer(tc.opts)
			defer b.Close()
			before := time.Now()
			tok, err := getToken(context.Background(), newClient(t, b), "dev", brokertest.PodToken(subject, time.Now().Add(time.Hour)))
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if err := b.Verify(tok.Value, "dev", time.Now()); err != nil {
				t.Errorf("issued token does not verify: %v", err)
			}
			if tok.ExpirySource != tc.wantSource {
				t.Errorf("ExpirySource = %q, want %q", tok.ExpirySource, tc.wantSource)
			}
			if tc.wantSource != "" {
				if lo, hi := before.Add(2*time.Minute-2*time.Second), time.Now().Add(2*time.Minute+time.Second); tok.Expiry.Before(lo) || tok.Expiry.After(hi) {
					t.Errorf("Expiry = %v, want within [%v, %v]", tok.Expiry, lo, hi)
				}
			} else if !tok.Expiry.IsZero() {
				t.Errorf("Expiry = %v, want zero", tok.Expiry)
			}
			reqs := b.Requests()
			if len(reqs) != 1 || reqs[0].Target != "dev" || reqs[0].Subject != subject {
				t.Errorf("broker saw %+v, want one request for dev from %s", reqs, subject)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	pod := brokertest.PodToken(subject, time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name    string
		opts    brokertest.Options
		queue   []brokertest.Response
		path    string
		wantErr string
	}{
		{name: "refused subject", opts: brokertest.Options{Allow: []string{"someone-else"}},
			wantErr: "broker refused the identity \"" + subject + "\" for target \"dev\" (HTTP 403); check the broker's allow rule"},
		{name: "unauthorized", queue: []brokertest.Response{{Status: 401}}, wantErr: "(HTTP 401)"},
		{name: "wrong path", path: "/nope", wantErr: "has no such endpoint (HTTP 404); check --broker-url"},
		{name: "html login page", queue: []brokertest.Response{{Status: 200, Header: map[string]string{"Content-Type": "text/html"}, Body: "<html>login " + pod + "</html>"}},
			wantErr: "answered with an HTML page, not a token"},
		{name: "empty body", queue: []brokertest.Response{{Status: 200}}, wantErr: "answered with an empty body"},
		{name: "text with spaces", queue: []brokertest.Response{{Status: 200, Body: "not a token " + pod}}, wantErr: "text that is not a token"},
		{name: "malformed json", queue: []brokertest.Response{{Status: 200, Body: `{"token": "` + pod}}, wantErr: "malformed JSON"},
		{name: "json without token", queue: []brokertest.Response{{Status: 200, Body: `{"tok": "x"}`}}, wantErr: "holds no token"},
		{name: "oversized body", queue: []brokertest.Response{{Status: 200, Body: strings.Repeat("a", 300<<10)}}, wantErr: "larger than 256 KiB"},
		{name: "server error after retries", queue: []brokertest.Response{{Status: 502}, {Status: 502}, {Status: 502}, {Status: 502}}, wantErr: "failed (HTTP 502) after retries"},
		{name: "redirect", queue: []brokertest.Response{{Status: 302, Header: map[string]string{"Location": "https://login.example.com/auth"}}}, wantErr: `redirected (HTTP 302) to "https://login.example.com"`},
		{name: "bad request", queue: []brokertest.Response{{Status: 400, Body: pod}}, wantErr: `answered HTTP 400 for target "dev"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.NewServer(tc.opts)
			defer b.Close()
			b.Queue(tc.queue...)
			url := b.URL
			if tc.path != "" {
				url = strings.TrimSuffix(b.URL, brokertest.Path) + tc.path
			}
			c, err := broker.New(broker.Config{URL: url, CAFile: b.CAFile(t.TempDir()), RetryMax: 3})
			if err != nil {
				t.Fatal(err)
			}
			_, err = getToken(context.Background(), c, "dev", pod)
			if err == nil {
				t.Fatal("Fetch succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
			}
			brokertest.NoLeak(t, "error", err.Error(), pod)
		})
	}
}

func TestFetchRetriesThenSucceeds(t *testing.T) {
	b := brokertest.NewServer(brokertest.Options{})
	defer b.Close()
	b.Queue(brokertest.Response{Status: 503}, brokertest.Response{Status: 429, Header: map[string]string{"Retry-After": "0"}}, brokertest.Response{Status: 500})
	tok, err := getToken(context.Background(), newClient(t, b), "dev", brokertest.PodToken(subject, time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if err := b.Verify(tok.Value, "dev", time.Now()); err != nil {
		t.Errorf("token does not verify: %v", err)
	}
	if n := len(b.Requests()); n != 4 {
		t.Errorf("broker saw %d requests, want 4 (3 failures, 1 success)", n)
	}
}

func TestFetchTLSAndTimeoutErrors(t *testing.T) {
	b := brokertest.NewServer(brokertest.Options{Latency: 2 * time.Second})
	defer b.Close()
	pod := brokertest.PodToken(subject, time.Now().Add(time.Hour))

	noCA, err := broker.New(broker.Config{URL: b.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = getToken(context.Background(), noCA, "dev", pod)
	if err == nil || !strings.Contains(err.Error(), "certificate from an unknown authority; set --ca-file") {
		t.Errorf("without CA: error = %v, want unknown authority", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = getToken(ctx, newClient(t, b), "dev", pod)
	if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Errorf("slow broker: error = %v, want a timeout", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     broker.Config
		wantErr string
	}{
		{"no url", broker.Config{}, "no broker URL; set --broker-url"},
		{"plain http", broker.Config{URL: "http://ou.example.com/api/get-target-token"}, "plain http and would expose the pod token"},
		{"relative url", broker.Config{URL: "ou.example.com/api"}, "not an absolute URL"},
		{"password hidden", broker.Config{URL: "http://user:hunter2secret@ou.example.com/"}, "http://user:xxxxx@ou.example.com/"},
		{"insecure http beyond loopback", broker.Config{URL: "http://ou.example.com/", InsecureHTTP: true}, `--insecure-http allows only a loopback broker, not "ou.example.com"`},
		{"missing CA file", broker.Config{URL: "https://ou.example.com/", CAFile: "/nonexistent/ca.pem"}, "read broker CA /nonexistent/ca.pem: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := broker.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2secret") {
				t.Error("error leaks the URL's password")
			}
		})
	}
	if _, err := broker.New(broker.Config{URL: "http://127.0.0.1:1/", InsecureHTTP: true}); err != nil {
		t.Errorf("http with InsecureHTTP: %v", err)
	}
}
