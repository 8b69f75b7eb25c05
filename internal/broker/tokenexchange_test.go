package broker_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// A secret with characters that RFC 6749's form-encoding before HTTP Basic
// must survive.
const clientSecret = "s3cr:et/+&=%"

type exchangeFixture struct {
	broker *brokertest.Server
	cfg    broker.Config
	ps     *broker.Settings
	pod    string
}

func newExchange(t *testing.T, opts brokertest.Options, ps broker.Settings) exchangeFixture {
	t.Helper()
	b := brokertest.NewServer(opts)
	t.Cleanup(b.Close)
	dir := t.TempDir()
	if ps.OAuth.ClientSecretFile == "" && opts.ClientSecret != "" {
		ps.OAuth.ClientSecretFile = filepath.Join(dir, "secret")
		writeSecret(t, ps.OAuth.ClientSecretFile, opts.ClientSecret+"\n")
	}
	return exchangeFixture{broker: b, pod: brokertest.PodToken(subject, time.Now().Add(time.Hour)), ps: &ps,
		cfg: broker.Config{URL: b.ExchangeURL(), CAFile: b.CAFile(dir)}}
}

func writeSecret(t *testing.T, path, secret string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f exchangeFixture) fetch(t *testing.T, target string) (broker.Token, error) {
	t.Helper()
	return f.fetchAs(t, "token-exchange", target)
}

// fetchAs asks the fixture's broker for a token for target in protocol.
func (f exchangeFixture) fetchAs(t *testing.T, protocol, target string) (broker.Token, error) {
	t.Helper()
	c, err := broker.New(f.cfg)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	p, err := broker.Choose(protocol, *f.ps)
	if err != nil {
		t.Fatal(err)
	}
	return broker.Fetch(context.Background(), c, p, broker.Call{Target: target, PodToken: f.pod})
}

func TestExchangeSendsEveryField(t *testing.T) {
	f := newExchange(t, brokertest.Options{ClientID: "argo cd", ClientSecret: clientSecret, TTL: 90 * time.Second}, broker.Settings{
		OAuth:         broker.OAuthClient{ClientID: "argo cd", Scopes: []string{"openid", "groups"}, Audience: "dev-aud"},
		TokenExchange: broker.TokenExchange{ConnectorID: "kubernetes", RequestedTokenType: broker.TokenTypeIDToken, SubjectTokenType: broker.TokenTypeJWT},
	})
	sent := time.Now()
	tok, err := f.fetch(t, "dev")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if err := f.broker.Verify(tok.Value, "dev-aud", time.Now()); err != nil {
		t.Errorf("issued token does not verify for the audience: %v", err)
	}
	// The token's exp claim has whole seconds, so it may come up to a
	// second before expires_in counted from sending: the earlier wins.
	if src := tok.ExpirySource; (src != "expires_in" && src != "jwt") || tok.Expiry.Before(sent.Add(88*time.Second)) || tok.Expiry.After(time.Now().Add(90*time.Second)) {
		t.Errorf("expiry = %v from %q, want 90s after sending, from expires_in or the jwt", tok.Expiry.Sub(sent), tok.ExpirySource)
	}
	reqs := f.broker.Requests()
	if len(reqs) != 1 {
		t.Fatalf("broker got %d requests, want 1", len(reqs))
	}
	want := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token_type":   {broker.TokenTypeJWT},
		"requested_token_type": {broker.TokenTypeIDToken},
		"audience":             {"dev-aud"},
		"connector_id":         {"kubernetes"},
		"scope":                {"openid groups"},
	}
	if got := reqs[0].Form.Encode(); got != want.Encode() {
		t.Errorf("form = %s\nwant   %s", got, want.Encode())
	}
	if reqs[0].Subject != subject || !reqs[0].Authorization {
		t.Errorf("request = subject %q, Authorization %v; want %q with Basic auth", reqs[0].Subject, reqs[0].Authorization, subject)
	}
}

func TestExchangeDefaults(t *testing.T) {
	f := newExchange(t, brokertest.Options{ClientID: "public"}, broker.Settings{OAuth: broker.OAuthClient{ClientID: "public"}})
	if _, err := f.fetch(t, "dev"); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	got := f.broker.Requests()[0]
	if got.Form.Get("audience") != "dev" || got.Form.Get("client_id") != "public" ||
		got.Form.Get("subject_token_type") != broker.TokenTypeIDToken ||
		got.Form.Get("requested_token_type") != broker.TokenTypeAccessToken || got.Authorization {
		t.Errorf("public client request = %v (Authorization %v); want audience=target, client_id in the form, id_token in, access_token out, no Authorization",
			got.Form, got.Authorization)
	}
}

func TestExchangeReadsSecretEachCall(t *testing.T) {
	f := newExchange(t, brokertest.Options{ClientID: "argocd", ClientSecret: clientSecret}, broker.Settings{OAuth: broker.OAuthClient{ClientID: "argocd"}})
	if _, err := f.fetch(t, "dev"); err != nil {
		t.Fatalf("first Fetch: %v", err)
	}
	writeSecret(t, f.ps.OAuth.ClientSecretFile, "rotated-away")
	_, err := f.fetch(t, "dev")
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("after the secret changed, err = %v, want invalid_client", err)
	}
	brokertest.NoLeak(t, "error", err.Error(), f.pod)
}

func TestExchangeErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    brokertest.Options
		x       broker.Settings
		canned  *brokertest.Response
		wantErr string
	}{
		{name: "wrong client secret", opts: brokertest.Options{ClientID: "argocd", ClientSecret: "right"},
			x:       broker.Settings{OAuth: broker.OAuthClient{ClientID: "argocd", ClientSecretFile: "WRONG"}},
			wantErr: `refused the token exchange: "invalid_client" ("Invalid client credentials."); check --client-id "argocd" and --client-secret-file`},
		{name: "subject refused", opts: brokertest.Options{Allow: []string{"nobody"}},
			wantErr: `"invalid_grant" ("subject token is not accepted"); the broker did not accept the pod token: check that it trusts the cluster's ServiceAccount issuer and accepts the pod token's audience`},
		{name: "dex refuses the subject", canned: &brokertest.Response{Status: 401, Body: `{"error":"access_denied"}`},
			wantErr: `refused the token exchange: "access_denied"; Dex did not accept the pod token: check that the connector --connector-id names has the cluster's ServiceAccount issuer`},
		{name: "grant not enabled", canned: &brokertest.Response{Status: 400, Body: `{"error":"unsupported_grant_type"}`},
			wantErr: `refused the token exchange: "unsupported_grant_type"; the broker does not offer token exchange here`},
		{name: "audience refused", canned: &brokertest.Response{Status: 400, Body: `{"error":"invalid_target","error_description":"no such\nclient"}`},
			wantErr: `"invalid_target" ("no such client"); the broker will not issue a token for audience "dev"`},
		{name: "unknown oauth error", canned: &brokertest.Response{Status: 400, Body: `{"error":"server_error"}`},
			wantErr: `refused the token exchange: "server_error"; check --broker-url, --connector-id`},
		{name: "description echoing the pod token is dropped", canned: &brokertest.Response{Status: 400, Body: `{"error":"invalid_grant","error_description":"bad token POD"}`},
			wantErr: `refused the token exchange: "invalid_grant"; the broker did not accept the pod token`},
		{name: "not json", canned: &brokertest.Response{Status: 200, Body: "<html>login</html>"},
			wantErr: "answered the token exchange with malformed JSON"},
		{name: "no access_token", canned: &brokertest.Response{Status: 200, Body: `{"token_type":"Bearer"}`},
			wantErr: "answered the token exchange without a usable access_token"},
		{name: "plain 403", canned: &brokertest.Response{Status: 403, Body: "forbidden"},
			wantErr: "broker refused the identity \"" + subject + "\""},
		{name: "missing secret file", x: broker.Settings{OAuth: broker.OAuthClient{ClientSecretFile: "/nonexistent/secret"}},
			wantErr: "read client secret /nonexistent/secret: no such file or directory; set --client-secret-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.x.OAuth.ClientSecretFile == "WRONG" {
				tc.x.OAuth.ClientSecretFile = filepath.Join(t.TempDir(), "secret")
				writeSecret(t, tc.x.OAuth.ClientSecretFile, "wrong")
			}
			f := newExchange(t, tc.opts, tc.x)
			if tc.canned != nil {
				tc.canned.Body = strings.Replace(tc.canned.Body, "POD", f.pod, 1)
				f.broker.Queue(*tc.canned)
			}
			_, err := f.fetch(t, "dev")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			brokertest.NoLeak(t, "error", err.Error(), f.pod)
		})
	}
}
