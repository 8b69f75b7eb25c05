package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/secret"
)

type vaultFixture struct {
	vault   *brokertest.Server
	cfg     broker.Config
	v       broker.Vault
	pod     string
	secrets *secret.Set
	steps   []traced
}

// traced is one step a protocol reported to Call.Trace.
type traced struct {
	name, detail string
	err          error
}

func newVault(t *testing.T, opts brokertest.Options, v broker.Vault) *vaultFixture {
	t.Helper()
	b := brokertest.NewServer(opts)
	t.Cleanup(b.Close)
	return &vaultFixture{vault: b, v: v, pod: brokertest.PodToken(subject, time.Now().Add(time.Hour)), secrets: new(secret.Set),
		cfg: broker.Config{URL: b.VaultURL(), CAFile: b.CAFile(t.TempDir()), RetryMax: 3}}
}

func (f *vaultFixture) fetch(t *testing.T, target string) (broker.Token, error) {
	t.Helper()
	c, err := broker.New(f.cfg)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	f.steps = nil
	return broker.Fetch(context.Background(), c, f.chosen(t), broker.Call{Target: target, PodToken: f.pod, Secrets: f.secrets,
		Trace: func(step, detail string, err error) { f.steps = append(f.steps, traced{step, detail, err}) }})
}

// chosen is the vault protocol with the fixture's settings.
func (f *vaultFixture) chosen(t *testing.T) broker.Chosen {
	t.Helper()
	p, err := broker.Choose("vault", broker.Settings{Vault: f.v})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// secretsOf are every secret of the fixture's calls: the pod token, each
// Vault token and each identity token the fake issued, and the canned ones.
func (f *vaultFixture) secretsOf(canned ...string) []string {
	return slices.Concat([]string{f.pod}, f.vault.VaultTokens(), f.vault.Issued(), canned)
}

func (f *vaultFixture) assertNoLeak(t *testing.T, what, text string, canned ...string) {
	t.Helper()
	brokertest.NoLeak(t, what, text, f.secretsOf(canned...)...)
}

func TestVaultSendsEveryField(t *testing.T) {
	var reviewed []string
	f := newVault(t, brokertest.Options{
		Review: func(token string) (string, error) {
			reviewed = append(reviewed, token)
			return subject, nil
		},
		Vault: brokertest.VaultOptions{Mount: "k8s/prod", LoginRole: "argocd", Namespace: "team-a", Lease: time.Hour,
			Roles: map[string]brokertest.VaultRole{"cluster-dev": {ClientID: "dev", TTL: 90 * time.Second}}},
	}, broker.Vault{AuthMount: "k8s/prod", LoginRole: "argocd", TokenRole: "cluster-{target}", Namespace: "team-a"})
	sent := time.Now()
	tok, err := f.fetch(t, "dev")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if err := f.vault.Verify(tok.Value, "dev", time.Now()); err != nil {
		t.Errorf("identity token does not verify for aud dev (the role's client_id): %v", err)
	}
	claims, err := broker.ParseClaims(tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.vault.VaultURL() + "/v1/identity/oidc"; claims.Issuer != want || claims.Subject == "" || claims.Subject == subject {
		t.Errorf("claims iss %q sub %q, want iss %q and an entity id for sub", claims.Issuer, claims.Subject, want)
	}
	if src := tok.ExpirySource; (src != "ttl" && src != "jwt") || tok.Expiry.Before(sent.Add(88*time.Second)) || tok.Expiry.After(time.Now().Add(90*time.Second)) {
		t.Errorf("expiry = %v after sending from %q, want 90s from the ttl or the jwt", tok.Expiry.Sub(sent), tok.ExpirySource)
	}
	if len(reviewed) != 1 || reviewed[0] != f.pod {
		t.Errorf("login's jwt: the fake reviewed %d tokens, want exactly the pod token", len(reviewed))
	}

	reqs := f.vault.Requests()
	want := []brokertest.VaultRequest{
		{Step: "login", Method: "POST", Mount: "k8s/prod", Role: "argocd", Fields: []string{"jwt", "role"}, Namespace: "team-a"},
		{Step: "token", Method: "GET", Role: "cluster-dev", Namespace: "team-a", VaultToken: "issued"},
		{Step: "revoke", Method: "POST", Namespace: "team-a", VaultToken: "issued"},
	}
	if len(reqs) != len(want) {
		t.Fatalf("Vault got %d requests, want %d", len(reqs), len(want))
	}
	for i, r := range reqs {
		if r.Vault == nil || fmt.Sprint(*r.Vault) != fmt.Sprint(want[i]) || r.Subject != subject {
			t.Errorf("request %d = %+v from %q\nwant      %+v from %q", i, r.Vault, r.Subject, want[i], subject)
		}
	}
	if live := f.vault.LiveVaultTokens(); len(live) != 0 {
		t.Errorf("%d Vault tokens still live, want the one issued revoked", len(live))
	}
	vaultToken := f.vault.VaultTokens()[0]
	if f.secrets.Scrub(vaultToken) == vaultToken {
		t.Error("the Vault token is not among the call's secrets")
	}

	wantSteps := []traced{
		{name: "vault login", detail: `auth/k8s/prod role "argocd": Vault token, lease 1h0m0s`},
		{name: "vault token", detail: `identity role "cluster-dev": client_id "dev", ttl 1m30s`},
		{name: "vault revoke", detail: "Vault token revoked"},
	}
	if fmt.Sprint(f.steps) != fmt.Sprint(wantSteps) {
		t.Errorf("steps traced:\n%v\nwant\n%v", f.steps, wantSteps)
	}
}

func TestVaultDefaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		v         broker.Vault
		wantRole  string
		wantMount string
	}{
		{name: "token role is the target, mount kubernetes", v: broker.Vault{LoginRole: "argocd"}, wantRole: "dev", wantMount: "kubernetes"},
		{name: "token role template", v: broker.Vault{LoginRole: "argocd", TokenRole: "k8s-{target}"}, wantRole: "k8s-dev", wantMount: "kubernetes"},
		{name: "jwt mount, slashes trimmed", v: broker.Vault{LoginRole: "argocd", AuthMount: "/jwt/"}, wantRole: "dev", wantMount: "jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newVault(t, brokertest.Options{Vault: brokertest.VaultOptions{Mount: tc.wantMount}}, tc.v)
			tok, err := f.fetch(t, "dev")
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if err := f.vault.Verify(tok.Value, tc.wantRole, time.Now()); err != nil {
				t.Errorf("token does not verify for %q, the role's default client_id: %v", tc.wantRole, err)
			}
			reqs := f.vault.Requests()
			if len(reqs) != 3 || reqs[0].Vault.Mount != tc.wantMount || reqs[1].Vault.Role != tc.wantRole {
				t.Fatalf("requests = %d, login mount %q, token role %q; want 3, %q, %q", len(reqs), reqs[0].Vault.Mount, reqs[1].Vault.Role, tc.wantMount, tc.wantRole)
			}
			for _, r := range reqs {
				if r.Vault.Namespace != "" {
					t.Errorf("%s sent X-Vault-Namespace %q without --vault-namespace", r.Vault.Step, r.Vault.Namespace)
				}
			}
		})
	}
}

func TestVaultNamespace(t *testing.T) {
	for _, tc := range []struct {
		name, fake, flag string
		wantErr          string
	}{
		{name: "sent on every request", fake: "team-a", flag: "team-a"},
		{name: "missing", fake: "team-a", wantErr: `found no auth method at auth/kubernetes (HTTP 404: "no handler for route \"auth/kubernetes/login\". route entry not found."); check --vault-auth-mount (vault auth list), --vault-namespace`},
		{name: "another", fake: "team-a", flag: "team-b", wantErr: "found no auth method at auth/kubernetes (HTTP 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newVault(t, brokertest.Options{Vault: brokertest.VaultOptions{Namespace: tc.fake}}, broker.Vault{LoginRole: "argocd", Namespace: tc.flag})
			_, err := f.fetch(t, "dev")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range f.vault.Requests() {
					if r.Vault.Namespace != tc.fake {
						t.Errorf("%s: X-Vault-Namespace %q, want %q", r.Vault.Step, r.Vault.Namespace, tc.fake)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// cannedLogin is a login answer holding a Vault token that the fake never
// issued, so that the next canned answer can play the token step.
const cannedVaultToken = "hvs.CAESIcannedvaulttokenvalue0123456789"

var cannedLogin = brokertest.Response{Body: `{"auth":{"client_token":"` + cannedVaultToken + `","lease_duration":3600}}`}

func TestVaultErrors(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name     string
		opts     brokertest.VaultOptions
		allow    []string
		v        broker.Vault
		target   string
		queue    []brokertest.Response
		wantErr  string
		wantReqs int
	}{
		{name: "no login role", v: broker.Vault{},
			wantErr: "no Vault login role; set --vault-login-role (BROKERCRED_VAULT_LOGIN_ROLE) to the role of the auth method at --vault-auth-mount"},
		{name: "mount with dot-dot", v: broker.Vault{LoginRole: "argocd", AuthMount: "kubernetes/../../sys"},
			wantErr: `--vault-auth-mount "kubernetes/../../sys" is not a Vault mount path; set it to the path the auth method is enabled at`},
		{name: "target that is no role name", v: broker.Vault{LoginRole: "argocd"}, target: "../../secret/data/x",
			wantErr: `identity token role "../../secret/data/x" is not a Vault role name; set --vault-token-role (default: the target)`},
		{name: "unknown login role", opts: brokertest.VaultOptions{LoginRole: "argocd"}, v: broker.Vault{LoginRole: "argo"}, wantReqs: 1,
			wantErr: `refused (HTTP 400: "invalid role name \"argo\""): auth/kubernetes role "argo" for "` + subject + `", audience "token-broker"; check the role exists there and binds this ServiceAccount`},
		{name: "service account not bound", allow: []string{"someone-else"}, v: broker.Vault{LoginRole: "argocd"}, wantReqs: 1,
			wantErr: `refused (HTTP 403: "permission denied"): auth/kubernetes role "argocd" for "` + subject + `", audience "token-broker"; check`},
		{name: "no such auth method", v: broker.Vault{LoginRole: "argocd", AuthMount: "jwt"}, wantReqs: 1,
			wantErr: `found no auth method at auth/jwt (HTTP 404: "no handler for route \"auth/jwt/login\". route entry not found."); check --vault-auth-mount`},
		{name: "login message echoing the pod token is dropped", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 1,
			queue:   []brokertest.Response{{Status: 400, Body: `{"errors":["bad jwt POD"]}`}},
			wantErr: `refused (HTTP 400): auth/kubernetes role "argocd"`},
		{name: "long message shortened", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 1,
			queue:   []brokertest.Response{{Status: 403, Body: `{"errors":["` + long + `"]}`}},
			wantErr: `refused (HTTP 403: "` + long[:200] + `…"): auth/kubernetes`},
		{name: "sealed", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 4,
			queue:   slices.Repeat([]brokertest.Response{{Status: 503, Body: `{"errors":["Vault is sealed"]}`}}, 4),
			wantErr: `failed (HTTP 503: "Vault is sealed") after retries; check Vault is unsealed and healthy (vault status)`},
		{name: "login answer without a token", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 1,
			queue:   []brokertest.Response{{Body: `{"auth":null,"warnings":["mfa required"]}`}},
			wantErr: "answered the login without a usable client_token; check --vault-auth-mount is a kubernetes or jwt auth method"},
		{name: "no identity role", opts: brokertest.VaultOptions{Roles: map[string]brokertest.VaultRole{"prod": {}}}, v: broker.Vault{LoginRole: "argocd"}, wantReqs: 3,
			wantErr: `: no identity token role "dev" (HTTP 400: "role \"dev\" not found"); create it (vault write identity/oidc/role/dev key=KEY client_id=dev ttl=60s) and let the login role's policy read identity/oidc/token/dev`},
		{name: "policy denies the identity role", opts: brokertest.VaultOptions{Denied: []string{"dev"}}, v: broker.Vault{LoginRole: "argocd"}, wantReqs: 3,
			wantErr: `denied for identity role "dev" (HTTP 403: "1 error occurred: * permission denied"); the policy of login role "argocd" needs read on identity/oidc/token/dev`},
		{name: "key does not allow the client_id", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 3,
			queue:   []brokertest.Response{cannedLogin, {Status: 400, Body: `{"errors":["the key \"k\" does not list the client ID of the role \"dev\" as an allowed client ID"]}`}},
			wantErr: `refused for identity role "dev" (HTTP 400: "the key \"k\" does not list the client ID of the role \"dev\" as an allowed client ID"); check the role and its key (vault read identity/oidc/role/dev`},
		{name: "token message echoing the Vault token is dropped", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 3,
			queue:   []brokertest.Response{cannedLogin, {Status: 403, Body: `{"errors":["token VAULT is not allowed"]}`}},
			wantErr: `denied for identity role "dev" (HTTP 403); the policy of login role "argocd"`},
		{name: "token answer malformed", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 3,
			queue:   []brokertest.Response{cannedLogin, {Body: `{"data":{"token":`}},
			wantErr: "answered the identity token request with malformed JSON (syntax error at byte 17); check --broker-url is Vault's address"},
		{name: "token answer without a token", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 3,
			queue:   []brokertest.Response{cannedLogin, {Body: `{"data":{"client_id":"dev"}}`}},
			wantErr: "answered the identity token request without a usable token"},
		{name: "identity endpoint missing", v: broker.Vault{LoginRole: "argocd"}, wantReqs: 3,
			queue:   []brokertest.Response{cannedLogin, {Status: 404, Body: `{"errors":[]}`}},
			wantErr: "has no such endpoint (HTTP 404); check --broker-url is Vault's address, e.g. https://vault.example.com:8200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newVault(t, brokertest.Options{Allow: tc.allow, Vault: tc.opts}, tc.v)
			for _, r := range tc.queue {
				r.Body = strings.NewReplacer("POD", f.pod, "VAULT", cannedVaultToken).Replace(r.Body)
				f.vault.Queue(r)
			}
			if tc.target == "" {
				tc.target = "dev"
			}
			_, err := f.fetch(t, tc.target)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.wantErr)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error spans several lines: %q", err)
			}
			if n := len(f.vault.Requests()); n != tc.wantReqs {
				t.Errorf("Vault got %d requests, want %d", n, tc.wantReqs)
			}
			f.assertNoLeak(t, "the error", err.Error(), cannedVaultToken)
			for _, s := range f.steps {
				f.assertNoLeak(t, "trace "+s.name, fmt.Sprint(s.detail, s.err), cannedVaultToken)
			}
			if live := f.vault.LiveVaultTokens(); len(live) != 0 {
				t.Errorf("%d Vault tokens left live after a failed call, want every one revoked", len(live))
			}
		})
	}
}

func TestVaultRevokeIsBestEffort(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       brokertest.VaultOptions
		queue      []brokertest.Response
		wantRevoke string // the revoke step's error; "" when it worked
		wantLive   int
	}{
		{name: "revoked", wantLive: 0},
		{name: "revoke refused", opts: brokertest.VaultOptions{RevokeStatus: 403}, wantLive: 1,
			wantRevoke: `failed (HTTP 403: "revocation failed"); the Vault token stays valid until its lease ends`},
		{name: "revoke fails once, not retried", opts: brokertest.VaultOptions{RevokeStatus: 503}, wantLive: 1,
			wantRevoke: `failed (HTTP 503: "revocation failed"); the Vault token stays valid`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newVault(t, brokertest.Options{Vault: tc.opts}, broker.Vault{LoginRole: "argocd"})
			var logs bytes.Buffer
			f.cfg.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			tok, err := f.fetch(t, "dev")
			if err != nil {
				t.Fatalf("Fetch failed although only the revoke did: %v", err)
			}
			if err := f.vault.Verify(tok.Value, "dev", time.Now()); err != nil {
				t.Errorf("token does not verify: %v", err)
			}
			reqs := f.vault.Requests()
			if len(reqs) != 3 || reqs[2].Vault.Step != "revoke" || reqs[2].Vault.VaultToken != "issued" {
				t.Fatalf("requests = %d, want login, token and one revoke with the issued token", len(reqs))
			}
			revoke := f.steps[len(f.steps)-1]
			switch {
			case revoke.name != "vault revoke":
				t.Errorf("last step = %q, want vault revoke", revoke.name)
			case tc.wantRevoke == "" && revoke.err != nil:
				t.Errorf("revoke step failed: %v", revoke.err)
			case tc.wantRevoke != "" && (revoke.err == nil || !strings.Contains(revoke.err.Error(), tc.wantRevoke)):
				t.Errorf("revoke step err = %v, want it to contain %q", revoke.err, tc.wantRevoke)
			}
			if tc.wantRevoke != "" && !strings.Contains(logs.String(), "vault token not revoked") {
				t.Errorf("-v log does not report the failed revoke:\n%s", logs.String())
			}
			if n := len(f.vault.LiveVaultTokens()); n != tc.wantLive {
				t.Errorf("%d Vault tokens live, want %d", n, tc.wantLive)
			}
			f.assertNoLeak(t, "the log", logs.String())
		})
	}
}

// TestVaultRevokeWithinTheDeadline: a revoke that hangs ends with the
// caller's context, and the call still returns its token.
func TestVaultRevokeWithinTheDeadline(t *testing.T) {
	f := newVault(t, brokertest.Options{}, broker.Vault{LoginRole: "argocd"})
	c, err := broker.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var revokeErr error
	// The login and the token step play Vault from canned answers; the
	// revoke hangs until the context ends.
	token := f.vault.Issue("dev", "entity", time.Now().Add(time.Minute))
	f.vault.Queue(cannedLogin, brokertest.Response{Body: `{"data":{"token":"` + token + `","client_id":"dev","ttl":60}}`}, brokertest.Response{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	tok, err := broker.Fetch(ctx, c, f.chosen(t), broker.Call{Target: "dev", PodToken: f.pod, Trace: func(step, _ string, err error) {
		if step == "vault revoke" {
			revokeErr = err
		}
	}})
	if err != nil || tok.Value != token {
		t.Fatalf("Fetch = %v, want the token despite the hanging revoke", err)
	}
	if revokeErr == nil || !strings.Contains(revokeErr.Error(), "did not answer in time") {
		t.Errorf("revoke err = %v, want a timeout", revokeErr)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Fetch took %v, want it bounded by the 500ms context", d)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("the context ended early")
	}
}

// TestVaultRevokesAfterTheBudgetIsSpent: when the identity step outlives
// the call's context, the Vault token is still revoked, with a short
// context of the revoke's own.
func TestVaultRevokesAfterTheBudgetIsSpent(t *testing.T) {
	f := newVault(t, brokertest.Options{Latency: 300 * time.Millisecond}, broker.Vault{LoginRole: "argocd"})
	c, err := broker.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The login answers at 300 ms, the token step at 600 ms: past the
	// 500 ms budget.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := broker.Fetch(ctx, c, f.chosen(t), broker.Call{Target: "dev", PodToken: f.pod}); err == nil {
		t.Fatal("Fetch succeeded although its token step outlived the context")
	}
	if live := f.vault.LiveVaultTokens(); len(live) != 0 {
		t.Errorf("%d Vault tokens left live after the budget ran out, want the one issued revoked", len(live))
	}
}
