package brokertest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// vaultCall is one request to the fake Vault and what it answered.
type vaultCall struct {
	method, path, token, body string
}

func (c vaultCall) do(t *testing.T, s *Server) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(c.method, s.VaultURL()+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("X-Vault-Token", c.token)
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var answer map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &answer); err != nil {
			t.Fatalf("%s %s answered %d with non-JSON %q", c.method, c.path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, answer
}

// TestVaultAnswersInVaultsShapes walks the fake Vault through the
// documented answers: login, identity token, revoke-self, and the error
// shapes of an invalid login, an unknown role and a refused token.
func TestVaultAnswersInVaultsShapes(t *testing.T) {
	s := NewServer(Options{TTL: 90 * time.Second, Allow: []string{"system:serviceaccount:argocd:argocd-server"},
		Vault: VaultOptions{LoginRole: "argocd", Roles: map[string]VaultRole{"dev": {ClientID: "dev-cluster"}}}})
	defer s.Close()
	pod := PodToken("system:serviceaccount:argocd:argocd-server", time.Now().Add(time.Hour))
	stranger := PodToken("system:serviceaccount:default:default", time.Now().Add(time.Hour))

	status, login := vaultCall{"POST", "/v1/auth/kubernetes/login", "", `{"role":"argocd","jwt":"` + pod + `"}`}.do(t, s)
	auth, _ := login["auth"].(map[string]any)
	token, _ := auth["client_token"].(string)
	if status != 200 || !strings.HasPrefix(token, "hvs.") || auth["lease_duration"] != float64(768*3600) {
		t.Fatalf("login = %d %v, want 200 with auth.client_token and lease_duration", status, login)
	}

	status, issued := vaultCall{"GET", "/v1/identity/oidc/token/dev", token, ""}.do(t, s)
	data, _ := issued["data"].(map[string]any)
	jwt, _ := data["token"].(string)
	if status != 200 || data["client_id"] != "dev-cluster" || data["ttl"] != float64(90) {
		t.Fatalf("token = %d %v, want 200 with data.token, client_id dev-cluster and ttl 90", status, issued)
	}
	if err := s.Verify(jwt, "dev-cluster", time.Now()); err != nil {
		t.Errorf("the identity token does not verify for its client_id: %v", err)
	}

	for _, tc := range []struct {
		name       string
		call       vaultCall
		wantStatus int
		wantError  string
	}{
		{"unknown login role", vaultCall{"POST", "/v1/auth/kubernetes/login", "", `{"role":"x","jwt":"` + pod + `"}`}, 400, `invalid role name "x"`},
		{"pod token not allowed", vaultCall{"POST", "/v1/auth/kubernetes/login", "", `{"role":"argocd","jwt":"` + stranger + `"}`}, 403, "permission denied"},
		{"no such mount", vaultCall{"POST", "/v1/auth/jwt/login", "", `{"role":"argocd","jwt":"` + pod + `"}`}, 404, `no handler for route "auth/jwt/login". route entry not found.`},
		{"unknown identity role", vaultCall{"GET", "/v1/identity/oidc/token/prod", token, ""}, 400, `role "prod" not found`},
		{"no Vault token", vaultCall{"GET", "/v1/identity/oidc/token/dev", "", ""}, 403, "1 error occurred:\n\t* permission denied\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := tc.call.do(t, s)
			errs, _ := answer["errors"].([]any)
			if status != tc.wantStatus || len(errs) != 1 || errs[0] != tc.wantError {
				t.Errorf("= %d %v, want %d {\"errors\": [%q]}", status, answer, tc.wantStatus, tc.wantError)
			}
		})
	}

	if status, _ := (vaultCall{"POST", "/v1/auth/token/revoke-self", token, ""}).do(t, s); status != http.StatusNoContent {
		t.Errorf("revoke-self = %d, want 204", status)
	}
	if status, _ := (vaultCall{"GET", "/v1/identity/oidc/token/dev", token, ""}).do(t, s); status != http.StatusForbidden {
		t.Errorf("token request with a revoked Vault token = %d, want 403", status)
	}
	if live := s.LiveVaultTokens(); len(live) != 0 {
		t.Errorf("%d Vault tokens live after revoke-self", len(live))
	}
	var states []string
	for _, r := range s.Requests() {
		states = append(states, r.Vault.Step+":"+r.Vault.VaultToken)
	}
	want := "login: token:issued login: login: login: token:issued token: revoke:issued token:revoked"
	if got := strings.Join(states, " "); got != want {
		t.Errorf("recorded %s\nwant     %s", got, want)
	}
}
