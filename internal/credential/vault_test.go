package credential

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/cache"
	"github.com/brokercred/brokercred/internal/secret"
)

// vaultFixture is newFixture with the fake Vault as the broker.
func vaultFixture(t *testing.T, bo brokertest.Options, v broker.Vault) fixture {
	t.Helper()
	f := newFixture(t, bo)
	f.opts.Protocol, f.opts.BrokerURL, f.opts.Vault = "vault", f.broker.VaultURL(), v
	return f
}

// vaultSecrets are every secret of f's Vault calls.
func vaultSecrets(f fixture) []string {
	return slices.Concat(issuedTokens(f), f.broker.VaultTokens())
}

func vaultSteps(b *brokertest.Server, step string) int {
	n := 0
	for _, r := range b.Requests() {
		if r.Vault != nil && r.Vault.Step == step {
			n++
		}
	}
	return n
}

// TestRunVaultCachesPerTokenRole: two identity roles for the same target
// and identity issue different tokens, so they never share a cache entry.
func TestRunVaultCachesPerTokenRole(t *testing.T) {
	roles := map[string]brokertest.VaultRole{"role-a": {ClientID: "dev"}, "role-b": {ClientID: "dev"}}
	f := vaultFixture(t, brokertest.Options{Vault: brokertest.VaultOptions{Roles: roles}}, broker.Vault{LoginRole: "argocd"})
	served := map[string]string{}
	for _, role := range []string{"role-a", "role-b", "role-a", "role-b"} {
		f.opts.Vault.TokenRole = role
		var logs bytes.Buffer
		secrets := new(secret.Set)
		c, err := run(t, f.opts, Env{Log: textLogger(&logs), Secrets: secrets})
		if err != nil {
			t.Fatalf("token role %s: %v", role, err)
		}
		if err := f.broker.Verify(c.Status.Token, "dev", time.Now()); err != nil {
			t.Errorf("token role %s: token does not verify for dev: %v", role, err)
		}
		if prev, ok := served[role]; ok && prev != c.Status.Token {
			t.Errorf("token role %s: second call not served from the cache", role)
		}
		served[role] = c.Status.Token
		for _, s := range vaultSecrets(f) {
			brokertest.NoLeak(t, "log", secrets.Scrub(logs.String()), s)
		}
	}
	if served["role-a"] == served["role-b"] {
		t.Error("two token roles were served the same token")
	}
	if n := vaultSteps(f.broker, "token"); n != 2 {
		t.Errorf("Vault issued %d identity tokens, want 2 (one per role; the repeats from the cache)", n)
	}
	c, err := cache.Open(f.opts.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if entries, err := c.List(); err != nil || len(entries) != 2 {
		t.Errorf("cache holds %d entries (%v), want 2", len(entries), err)
	}
	if live := f.broker.LiveVaultTokens(); len(live) != 0 {
		t.Errorf("%d Vault tokens left live", len(live))
	}
}

func TestDoctorVault(t *testing.T) {
	for _, tc := range []struct {
		name       string
		bo         brokertest.Options
		v          broker.Vault
		wantFailed string
		wantDetail string
		wantSkip   []string
		wantSteps  []string // the checks between cache and token request
	}{
		{name: "healthy", v: broker.Vault{LoginRole: "argocd"},
			wantDetail: `identity role "dev": client_id "dev", ttl 1m0s`, wantSteps: []string{"vault login", "vault token", "vault revoke"}},
		{name: "no login role", wantFailed: "token request", wantDetail: "no Vault login role; set --vault-login-role"},
		{name: "login refused", bo: brokertest.Options{Allow: []string{"nobody"}}, v: broker.Vault{LoginRole: "argocd"},
			wantFailed: "vault login", wantDetail: `refused (HTTP 403: "permission denied"): auth/kubernetes role "argocd"`,
			wantSkip: []string{"token request"}, wantSteps: []string{"vault login"}},
		{name: "identity role denied", bo: brokertest.Options{Vault: brokertest.VaultOptions{Denied: []string{"dev"}}}, v: broker.Vault{LoginRole: "argocd"},
			wantFailed: "vault token", wantDetail: `the policy of login role "argocd" needs read on identity/oidc/token/dev`,
			wantSkip: []string{"token request"}, wantSteps: []string{"vault login", "vault token", "vault revoke"}},
		{name: "revoke refused", bo: brokertest.Options{Vault: brokertest.VaultOptions{RevokeStatus: 403}}, v: broker.Vault{LoginRole: "argocd"},
			wantFailed: "vault revoke", wantDetail: "the Vault token stays valid until its lease ends",
			wantSteps: []string{"vault login", "vault token", "vault revoke"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := vaultFixture(t, tc.bo, tc.v)
			r := Doctor(context.Background(), f.opts, Env{})
			var text, js bytes.Buffer
			if err := WriteReport(&text, r, "text"); err != nil {
				t.Fatal(err)
			}
			if err := WriteReport(&js, r, "json"); err != nil {
				t.Fatal(err)
			}
			for _, s := range vaultSecrets(f) {
				brokertest.NoLeak(t, "doctor output", text.String()+js.String(), s)
			}
			assertDoctorOutcome(t, r, tc.wantFailed, tc.wantDetail, tc.wantSkip)
			var names []string
			for _, c := range r.Checks {
				names = append(names, c.Name)
			}
			want := slices.Concat([]string{"pod token", "target", "protocol", "broker URL", "broker DNS", "broker TCP", "broker TLS", "broker HTTP", "cache"},
				tc.wantSteps, []string{"token request"})
			if !slices.Equal(names, want) {
				t.Errorf("checks = %v\nwant     %v", names, want)
			}
			if !strings.Contains(text.String(), "✓ broker HTTP   answered HTTP 200") {
				t.Errorf("doctor did not find Vault's health endpoint:\n%s", text.String())
			}
		})
	}
}
