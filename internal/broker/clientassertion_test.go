package broker_test

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// newAssertion is a fake broker's client-assertion endpoint and a pod token
// for subject, with ps as the settings.
func newAssertion(t *testing.T, opts brokertest.Options, ps broker.Settings) exchangeFixture {
	t.Helper()
	f := newExchange(t, opts, ps)
	f.cfg.URL = f.broker.ClientAssertionURL()
	return f
}

func (f exchangeFixture) assert(t *testing.T, target string) (broker.Token, error) {
	t.Helper()
	return f.fetchAs(t, "client-assertion", target)
}

func TestClientAssertionSendsEveryField(t *testing.T) {
	for _, tc := range []struct {
		name     string
		oauth    broker.OAuthClient
		resource string
		want     url.Values // beside grant_type, client_id and client_assertion_type
		wantAud  string     // of the issued token
	}{
		{name: "Entra: one scope, {target} replaced",
			oauth: broker.OAuthClient{ClientID: "app-id", Scopes: []string{"api://{target}/.default"}},
			want:  url.Values{"scope": {"api://dev/.default"}}, wantAud: "api://dev"},
		{name: "AKS: a fixed scope, two scopes space-joined",
			oauth: broker.OAuthClient{ClientID: "app-id", Scopes: []string{"6dae42f8-4368-4678-94ff-3960e28e3630/.default", "openid"}},
			want:  url.Values{"scope": {"6dae42f8-4368-4678-94ff-3960e28e3630/.default openid"}}, wantAud: "6dae42f8-4368-4678-94ff-3960e28e3630"},
		{name: "audience and resource, only when set",
			oauth: broker.OAuthClient{ClientID: "app-id", Scopes: []string{"openid"}, Audience: "aud-{target}"}, resource: "https://{target}.example",
			want: url.Values{"scope": {"openid"}, "audience": {"aud-dev"}, "resource": {"https://dev.example"}}, wantAud: "https://dev.example"},
		{name: "Keycloak: audience, no scope",
			oauth: broker.OAuthClient{ClientID: "argocd", Audience: "{target}"},
			want:  url.Values{"audience": {"dev"}}, wantAud: "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAssertion(t, brokertest.Options{ClientID: tc.oauth.ClientID, TTL: 90 * time.Second},
				broker.Settings{OAuth: tc.oauth, ClientAssertion: broker.ClientAssertion{Resource: tc.resource}})
			sent := time.Now()
			tok, err := f.assert(t, "dev")
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if err := f.broker.Verify(tok.Value, tc.wantAud, time.Now()); err != nil {
				t.Errorf("issued token does not verify for %q: %v", tc.wantAud, err)
			}
			if src := tok.ExpirySource; (src != "expires_in" && src != "jwt") || tok.Expiry.Before(sent.Add(88*time.Second)) || tok.Expiry.After(time.Now().Add(90*time.Second)) {
				t.Errorf("expiry = sent+%v from %q, want 90s after sending", tok.Expiry.Sub(sent), tok.ExpirySource)
			}
			reqs := f.broker.Requests()
			if len(reqs) != 1 {
				t.Fatalf("broker got %d requests, want 1", len(reqs))
			}
			want := url.Values{
				"grant_type":            {"client_credentials"},
				"client_id":             {tc.oauth.ClientID},
				"client_assertion_type": {broker.ClientAssertionTypeJWT},
			}
			for k, v := range tc.want {
				want[k] = v
			}
			if got := reqs[0].Form.Encode(); got != want.Encode() {
				t.Errorf("form = %s\nwant   %s", got, want.Encode())
			}
			if reqs[0].Subject != subject || reqs[0].Authorization {
				t.Errorf("request = assertion subject %q, Authorization %v; want %q and no Authorization header", reqs[0].Subject, reqs[0].Authorization, subject)
			}
		})
	}
}

// TestClientAssertionEntraV1Answer reads the answer of Entra's v1 endpoint
// (--resource), which writes expires_in as a string.
func TestClientAssertionEntraV1Answer(t *testing.T) {
	f := newAssertion(t, brokertest.Options{}, broker.Settings{OAuth: broker.OAuthClient{ClientID: "app-id"},
		ClientAssertion: broker.ClientAssertion{Resource: "6dae42f8-4368-4678-94ff-3960e28e3630"}})
	issued := f.broker.Issue("6dae42f8-4368-4678-94ff-3960e28e3630", subject, time.Now().Add(2*time.Hour))
	f.broker.Queue(brokertest.Response{Body: `{"token_type":"Bearer","expires_in":"3599","ext_expires_in":"3599","expires_on":"1893456000",` +
		`"resource":"6dae42f8-4368-4678-94ff-3960e28e3630","access_token":"` + issued + `"}`})
	sent := time.Now()
	tok, err := f.assert(t, "dev")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if tok.Value != issued || tok.ExpirySource != "expires_in" || tok.Expiry.Before(sent.Add(3599*time.Second)) || tok.Expiry.After(time.Now().Add(3599*time.Second)) {
		t.Errorf("token = issued %v, expiry sent+%v from %q; want the issued token, 3599s from expires_in", tok.Value == issued, tok.Expiry.Sub(sent), tok.ExpirySource)
	}
}

func TestClientAssertionErrors(t *testing.T) {
	app := broker.OAuthClient{ClientID: "app", Scopes: []string{"api://{target}/.default"}}
	const podClaims = `(iss "https://kubernetes.default.svc.cluster.local", sub "` + subject + `", aud "token-broker")`
	for _, tc := range []struct {
		name      string
		opts      brokertest.Options
		ps        broker.Settings
		pod       string // default: a fresh pod token for subject
		canned    *brokertest.Response
		wantErr   string
		wantAsked int // requests the broker got
	}{
		{name: "no client id", ps: broker.Settings{OAuth: broker.OAuthClient{Scopes: app.Scopes}},
			wantErr: "--protocol client-assertion needs --client-id; set it to the client the federated credential is on"},
		{name: "a client secret", ps: broker.Settings{OAuth: broker.OAuthClient{ClientID: "app", ClientSecretFile: "/etc/secret"}},
			wantErr: "--protocol client-assertion authenticates with the pod token, not a client secret; remove --client-secret-file"},
		{name: "an opaque pod token", ps: broker.Settings{OAuth: app}, pod: "opaque-pod-token-value",
			wantErr: "the pod token is not a JWT, which a client assertion must be (RFC 7523); set --token-file"},
		{name: "Entra: unknown client id", opts: brokertest.Options{ClientID: "right"}, ps: broker.Settings{OAuth: broker.OAuthClient{ClientID: "wrong", Scopes: app.Scopes}}, wantAsked: 1,
			wantErr: `refused the client assertion: AADSTS700016 "unauthorized_client" ("AADSTS700016: Application with identifier 'wrong' was not found in the directory. Trace ID: `},
		{name: "Entra: no federated credential for the subject", opts: brokertest.Options{Allow: []string{"nobody"}}, ps: broker.Settings{OAuth: app}, wantAsked: 1,
			wantErr: `AADSTS700213 "invalid_client" ("AADSTS700213: No matching federated identity record found for presented assertion subject '` + subject + `'.`},
		{name: "Entra: subject hint", opts: brokertest.Options{Allow: []string{"nobody"}}, ps: broker.Settings{OAuth: app}, wantAsked: 1,
			wantErr: `; no federated identity credential on client "app" has subject "` + subject + `": set the credential's subject to exactly that`},
		{name: "Entra: no federated credential at all", opts: brokertest.Options{Review: func(string) (string, error) { return "", errors.New("unknown issuer") }},
			ps: broker.Settings{OAuth: app}, wantAsked: 1,
			wantErr: `AADSTS70021 "invalid_request" ("AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: 'https://kubernetes.default.svc.cluster.local'.`},
		{name: "Entra: record hint names iss, sub and aud", opts: brokertest.Options{Review: func(string) (string, error) { return "", errors.New("unknown issuer") }},
			ps: broker.Settings{OAuth: app}, wantAsked: 1,
			wantErr: `; no federated identity credential on client "app" matches the pod token ` + podClaims + `: add one with exactly this issuer, subject and audience`},
		{name: "Entra: expired assertion", ps: broker.Settings{OAuth: app}, pod: brokertest.PodToken(subject, time.Now().Add(-time.Minute)), wantAsked: 1,
			wantErr: `AADSTS700024 "invalid_client" ("AADSTS700024: Client assertion is not within its valid time range. Trace ID: `},
		{name: "Entra: expired assertion hint", ps: broker.Settings{OAuth: app}, pod: brokertest.PodToken(subject, time.Now().Add(-time.Minute)), wantAsked: 1,
			wantErr: `is expired, not yet valid or not for this audience: check the node's clock and that the projected token's audience is the credential's (Entra: api://AzureADTokenExchange)`},
		{name: "Entra: issuer not trusted", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 401, Body: `{"error":"invalid_client","error_description":"AADSTS700211: No matching federated identity record found for presented assertion issuer 'https://kubernetes.default.svc.cluster.local'.","error_codes":[700211]}`},
			wantErr: `; no federated identity credential on client "app" trusts issuer "https://kubernetes.default.svc.cluster.local": set the credential's issuer to the control-plane cluster's OIDC issuer URL`},
		{name: "Entra: scope refused", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 400, Body: `{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' is not valid.","error_codes":[70011]}`},
			wantErr: `AADSTS70011 "invalid_scope" ("AADSTS70011: The provided value for the input parameter 'scope' is not valid."); the broker will not grant scope "api://dev/.default": check --scope`},
		{name: "no scope at all", ps: broker.Settings{OAuth: broker.OAuthClient{ClientID: "app"}}, wantAsked: 1,
			wantErr: `"invalid_scope" ("no scope, audience or resource names what the token is for"); no scope was sent: set --scope (Entra: RESOURCE/.default`},
		{name: "Keycloak: client credentials refused", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 401, Body: `{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}`},
			wantErr: `"unauthorized_client" ("Invalid client or Invalid client credentials"); check the federated credential of client "app" matches the pod token ` + podClaims},
		{name: "resource refused", ps: broker.Settings{OAuth: app, ClientAssertion: broker.ClientAssertion{Resource: "https://{target}.example"}}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 400, Body: `{"error":"invalid_target"}`},
			wantErr: `"invalid_target"; the broker will not issue a token for resource "https://dev.example", audience "": check --resource and --audience`},
		{name: "grant not enabled", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 400, Body: `{"error":"unsupported_grant_type"}`},
			wantErr: `"unsupported_grant_type"; the broker does not offer the client-credentials grant here`},
		{name: "unknown oauth error", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 503, Body: `{"error":"temporarily_unavailable"}`},
			wantErr: `refused the client assertion: "temporarily_unavailable"; check --broker-url, --client-id, --scope`},
		{name: "description echoing the pod token is dropped", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 401, Body: `{"error":"invalid_client","error_description":"bad assertion POD"}`},
			wantErr: `refused the client assertion: "invalid_client"; check the federated credential`},
		{name: "not json", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Body: "<html>login</html>"},
			wantErr: "answered the client credentials grant with malformed JSON (syntax error at byte 1); check --broker-url is the token endpoint"},
		{name: "no access_token", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Body: `{"token_type":"Bearer","expires_in":3599}`},
			wantErr: "answered the client credentials grant without a usable access_token"},
		{name: "plain 401", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 401, Body: "unauthorized"},
			wantErr: `broker refused the identity "` + subject + `" for target "dev" (HTTP 401)`},
		{name: "wrong path", ps: broker.Settings{OAuth: app}, wantAsked: 1,
			canned:  &brokertest.Response{Status: 404, Body: "not found"},
			wantErr: "(HTTP 404); check --broker-url is the token endpoint (Entra: https://login.microsoftonline.com/TENANT/oauth2/v2.0/token, Keycloak: https://HOST/realms/REALM/protocol/openid-connect/token)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAssertion(t, tc.opts, tc.ps)
			if tc.pod != "" {
				f.pod = tc.pod
			}
			if tc.canned != nil {
				tc.canned.Body = strings.Replace(tc.canned.Body, "POD", f.pod, 1)
				f.broker.Queue(*tc.canned)
			}
			_, err := f.assert(t, "dev")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.wantErr)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			brokertest.NoLeak(t, "error", err.Error(), f.pod)
			for _, issued := range f.broker.Issued() {
				brokertest.NoLeak(t, "error", err.Error(), issued)
			}
			if n := len(f.broker.Requests()); n != tc.wantAsked {
				t.Errorf("broker got %d requests, want %d", n, tc.wantAsked)
			}
		})
	}
}

// TestClientAssertionKeys: each scope set, audience and resource is an entry
// of its own for the same target and identity; the same settings share one.
func TestClientAssertionKeys(t *testing.T) {
	key := func(oauth broker.OAuthClient, resource string) string {
		ps := broker.Settings{OAuth: oauth, ClientAssertion: broker.ClientAssertion{Resource: resource}}
		p, err := broker.Choose("client-assertion", ps)
		if err != nil {
			t.Fatal(err)
		}
		return string(p.Identity)
	}
	a := broker.OAuthClient{ClientID: "app", Scopes: []string{"api://{target}/.default"}}
	b := broker.OAuthClient{ClientID: "app", Scopes: []string{"6dae42f8-4368-4678-94ff-3960e28e3630/.default"}}
	both := broker.OAuthClient{ClientID: "app", Scopes: []string{"api://{target}/.default", "6dae42f8-4368-4678-94ff-3960e28e3630/.default"}}
	aud := broker.OAuthClient{ClientID: "app", Scopes: a.Scopes, Audience: "{target}"}
	keys := map[string]string{}
	for name, k := range map[string]string{
		"scope a": key(a, ""), "scope b": key(b, ""), "scopes a and b": key(both, ""),
		"scope a with an audience": key(aud, ""), "scope a with a resource": key(a, "https://{target}.example"),
	} {
		if other, ok := keys[k]; ok {
			t.Errorf("%s and %s share a cache key", name, other)
		}
		keys[k] = name
	}
	if key(a, "") != key(broker.OAuthClient{ClientID: "app", Scopes: []string{"api://{target}/.default"}}, "") {
		t.Error("the same settings give different keys")
	}
	if k := key(a, ""); !bytes.Contains([]byte(k), []byte(`"client-assertion"`)) {
		t.Errorf("key %s does not name the protocol", k)
	}
}
