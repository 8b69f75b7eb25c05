package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Vault is HashiCorp Vault's (and OpenBao's) identity tokens, three calls to
// the Vault at --broker-url: log in at a kubernetes or jwt auth method with
// the pod token, ask the identity secrets engine for a token of an identity
// role (a JWT signed by Vault whose aud is the role's client_id), and revoke
// the Vault token, which nothing needs any more. The Vault token is a secret
// of the call: never printed, logged or cached.
//
// The zero value logs in at the "kubernetes" mount without a login role
// (Fetch refuses that), asks for the identity role named like the target,
// and sends no namespace.
type Vault struct {
	AuthMount string `name:"vault-auth-mount" env:"BROKERCRED_VAULT_AUTH_MOUNT" default:"kubernetes" placeholder:"PATH" help:"Path the Vault auth method (kubernetes or jwt) is enabled at (default: kubernetes)."`
	LoginRole string `name:"vault-login-role" env:"BROKERCRED_VAULT_LOGIN_ROLE" placeholder:"ROLE" help:"Role of that auth method to log in as (required)."`
	TokenRole string `name:"vault-token-role" env:"BROKERCRED_VAULT_TOKEN_ROLE" placeholder:"ROLE" help:"Identity token role that issues the token; {target} is replaced by the target (default: the target)."`
	Namespace string `name:"vault-namespace" env:"BROKERCRED_VAULT_NAMESPACE" placeholder:"NS" help:"Vault namespace, sent as X-Vault-Namespace on every request (default: none)."`
}

// endpointHint says where Vault's API lives.
func (Vault) endpointHint() string {
	return "check --broker-url is Vault's address, e.g. https://vault.example.com:8200 (brokercred adds /v1/…)"
}

// probePath is what doctor asks without credentials: Vault's address itself
// may serve nothing, its health endpoint always answers.
func (Vault) probePath() string { return "/v1/sys/health" }

// vaultTTLCap bounds the lease and ttl Vault states, so that no answer
// overflows a time.Duration; --max-ttl caps the token far lower anyway.
const vaultTTLCap = 10 * 365 * 24 * 60 * 60

// fetch logs in, asks for the identity token of call.Target's role and
// revokes the Vault token, reporting each step to call.Trace.
func (v Vault) fetch(ctx context.Context, c *Client, call Call) (Token, error) {
	mount, role, err := v.names(call.Target)
	if err != nil {
		return Token{}, err
	}
	login, err := v.login(ctx, c, call, mount)
	detail := fmt.Sprintf("auth/%s role %q: Vault token, lease %s", mount, v.LoginRole, describeLease(login.Auth.LeaseDuration))
	if err := call.step("vault login", detail, err); err != nil {
		return Token{}, err
	}
	tok, err := v.identityToken(ctx, c, call, role, login.Auth.ClientToken)
	v.revoke(ctx, c, call, login.Auth.ClientToken)
	return tok, err
}

// names are the auth mount and the identity role of a call for target,
// checked to be what Vault routes as such: a role becomes a path segment,
// and a target (which a cluster Secret's writer chooses) must not make the
// Vault token read anything but an identity token.
func (v Vault) names(target string) (mount, role string, err error) {
	if v.LoginRole == "" {
		return "", "", errors.New("no Vault login role; set --vault-login-role (BROKERCRED_VAULT_LOGIN_ROLE) to the role of the auth method at --vault-auth-mount")
	}
	mount = strings.Trim(orDefault(v.AuthMount, "kubernetes"), "/")
	for _, segment := range strings.Split(mount, "/") {
		if !isVaultName(segment) {
			return "", "", fmt.Errorf("--vault-auth-mount %q is not a Vault mount path; set it to the path the auth method is enabled at, e.g. kubernetes or jwt", mount)
		}
	}
	role = target
	if v.TokenRole != "" {
		role = strings.ReplaceAll(v.TokenRole, "{target}", target)
	}
	if !isVaultName(role) {
		return "", "", fmt.Errorf("identity token role %q is not a Vault role name; set --vault-token-role (default: the target) to letters, digits, '_', '-' and '.'", role)
	}
	return mount, role, nil
}

// isVaultName reports whether s is one name as Vault's routes match it
// (framework.GenericNameRegex): word characters, with '-' and '.' inside.
func isVaultName(s string) bool {
	word := func(b byte) bool {
		return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
	}
	if s == "" || !word(s[0]) || !word(s[len(s)-1]) {
		return false
	}
	for i := range len(s) {
		if !word(s[i]) && s[i] != '-' && s[i] != '.' {
			return false
		}
	}
	return true
}

// newRequest is a request to path under Vault's address, in the namespace.
func (v Vault) newRequest(ctx context.Context, c *Client, method, path string, body []byte) (*retryablehttp.Request, error) {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if v.Namespace != "" {
		req.Header.Set("X-Vault-Namespace", v.Namespace)
	}
	return req, nil
}

// vaultLogin is an auth method's login answer; only auth matters.
type vaultLogin struct {
	Auth struct {
		ClientToken   string `json:"client_token"`
		LeaseDuration int64  `json:"lease_duration"`
	} `json:"auth"`
}

// login trades the pod token for a Vault token at auth/mount/login, the
// same body for the kubernetes and the jwt auth methods. The Vault token
// joins call.Secrets as soon as it is read.
func (v Vault) login(ctx context.Context, c *Client, call Call, mount string) (vaultLogin, error) {
	body, err := json.Marshal(map[string]string{"role": v.LoginRole, "jwt": call.PodToken})
	if err != nil {
		return vaultLogin{}, fmt.Errorf("encode Vault login: %w", err)
	}
	req, err := v.newRequest(ctx, c, http.MethodPost, "/v1/auth/"+mount+"/login", body)
	if err != nil {
		return vaultLogin{}, err
	}
	resp, answer, err := c.roundTrip(ctx, req)
	if err != nil {
		return vaultLogin{}, err
	}
	if resp.StatusCode/100 != 2 {
		return vaultLogin{}, v.loginError(c, resp, answer, call, mount)
	}
	login, err := parseVaultLogin(answer, c.Host())
	call.Secrets.Add(login.Auth.ClientToken)
	return login, err
}

// parseVaultLogin reads a 2xx login answer. Errors describe the body,
// never quote it.
func parseVaultLogin(body []byte, host string) (vaultLogin, error) {
	var l vaultLogin
	if err := json.Unmarshal(body, &l); err != nil {
		return vaultLogin{}, fmt.Errorf("vault at %s answered the login with malformed JSON (%s); check --broker-url is Vault's address", host, jsonProblem(err))
	}
	if l.Auth.ClientToken == "" || !isTokenText([]byte(l.Auth.ClientToken)) {
		// l goes back all the same: whatever Vault sent joins the call's secrets.
		return l, fmt.Errorf("vault at %s answered the login without a usable client_token; check --vault-auth-mount is a kubernetes or jwt auth method", host)
	}
	return l, nil
}

func (v Vault) loginError(c *Client, resp *http.Response, body []byte, call Call, mount string) error {
	host, code := c.Host(), resp.StatusCode
	said := vaultSaid(code, vaultMessage(body, call.PodToken))
	switch {
	case code == http.StatusBadRequest || code == http.StatusForbidden:
		claims, _ := ParseClaims(call.PodToken)
		return fmt.Errorf("vault login at %s refused %s: auth/%s role %q for %s, audience %q; check the role exists there and binds this ServiceAccount (kubernetes: bound_service_account_names and _namespaces, audience; jwt: bound_subject or bound_claims, bound_audiences)",
			host, said, mount, v.LoginRole, describeSubject(call.PodToken), strings.Join(claims.Audience, ","))
	case code == http.StatusNotFound:
		return fmt.Errorf("vault login at %s found no auth method at auth/%s %s; check --vault-auth-mount (vault auth list), --vault-namespace, and that --broker-url is Vault's address, e.g. https://vault.example.com:8200", host, mount, said)
	case code >= 500:
		return fmt.Errorf("vault login at %s failed %s after retries; check Vault is unsealed and healthy (vault status) and its logs", host, said)
	}
	return c.statusError(resp, call, v.endpointHint())
}

// vaultIdentityToken is the answer of identity/oidc/token/:name.
type vaultIdentityToken struct {
	Data struct {
		Token    string `json:"token"`
		ClientID string `json:"client_id"`
		TTL      int64  `json:"ttl"`
	} `json:"data"`
}

// identityToken asks for a token of the identity role, as the entity the
// Vault token belongs to.
func (v Vault) identityToken(ctx context.Context, c *Client, call Call, role, vaultToken string) (Token, error) {
	req, err := v.newRequest(ctx, c, http.MethodGet, "/v1/identity/oidc/token/"+role, nil)
	if err != nil {
		return Token{}, call.step("vault token", "", err)
	}
	req.Header.Set("X-Vault-Token", vaultToken)
	sent := time.Now()
	resp, body, err := c.roundTrip(ctx, req)
	if err != nil {
		return Token{}, call.step("vault token", "", err)
	}
	if resp.StatusCode/100 != 2 {
		return Token{}, call.step("vault token", "", v.tokenError(c, resp, body, call, role, vaultToken))
	}
	tok, a, err := parseVaultIdentityToken(body, c.Host(), sent)
	detail := fmt.Sprintf("identity role %q: client_id %q, ttl %s", role, a.Data.ClientID, time.Duration(min(max(a.Data.TTL, 0), vaultTTLCap))*time.Second)
	return tok, call.step("vault token", detail, err)
}

// parseVaultIdentityToken reads a 2xx identity token answer; its ttl counts
// from sent, the moment the request left.
func parseVaultIdentityToken(body []byte, host string, sent time.Time) (Token, vaultIdentityToken, error) {
	var a vaultIdentityToken
	if err := json.Unmarshal(body, &a); err != nil {
		return Token{}, vaultIdentityToken{}, fmt.Errorf("vault at %s answered the identity token request with malformed JSON (%s); check --broker-url is Vault's address", host, jsonProblem(err))
	}
	if a.Data.Token == "" || !isTokenText([]byte(a.Data.Token)) {
		return Token{}, vaultIdentityToken{}, fmt.Errorf("vault at %s answered the identity token request without a usable token; check --broker-url is Vault's address", host)
	}
	t := Token{Value: a.Data.Token}
	if a.Data.TTL > 0 {
		t.Expiry, t.ExpirySource = sent.Add(time.Duration(min(a.Data.TTL, vaultTTLCap))*time.Second), "ttl"
	}
	return t, a, nil
}

func (v Vault) tokenError(c *Client, resp *http.Response, body []byte, call Call, role, vaultToken string) error {
	host, code := c.Host(), resp.StatusCode
	raw := vaultMessage(body)
	said := vaultSaid(code, vaultMessage(body, call.PodToken, vaultToken))
	switch {
	case (code == http.StatusBadRequest || code == http.StatusNotFound) && isMissingRole(raw):
		return fmt.Errorf("vault token at %s: no identity token role %q %s; create it (vault write identity/oidc/role/%s key=KEY client_id=%s ttl=60s) and let the login role's policy read identity/oidc/token/%s",
			host, role, said, role, call.Target, role)
	case code == http.StatusForbidden:
		return fmt.Errorf("vault token at %s denied for identity role %q %s; the policy of login role %q needs read on identity/oidc/token/%s", host, role, said, v.LoginRole, role)
	case code == http.StatusBadRequest:
		return fmt.Errorf("vault token at %s refused for identity role %q %s; check the role and its key (vault read identity/oidc/role/%s; the key's allowed_client_ids must list the role's client_id)", host, role, said, role)
	case code >= 500:
		return fmt.Errorf("vault token at %s failed %s after retries; check Vault is unsealed and healthy (vault status) and its logs", host, said)
	}
	return c.statusError(resp, call, v.endpointHint())
}

// isMissingRole reports whether Vault's message says the identity role
// does not exist (Vault and OpenBao: `role "NAME" not found`).
func isMissingRole(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "no role") || strings.Contains(m, "unknown role") ||
		strings.Contains(m, "role") && strings.Contains(m, "not found")
}

// revoke revokes the Vault token (auth/token/revoke-self), best effort: one
// try within ctx, and a failure only reported, to call.Trace and the -v log,
// since the identity token does not depend on it.
func (v Vault) revoke(ctx context.Context, c *Client, call Call, vaultToken string) {
	ctx, cancel := revokeContext(ctx)
	defer cancel()
	err := v.revokeSelf(ctx, c, vaultToken)
	_ = call.step("vault revoke", "Vault token revoked", err)
	if c.cfg.Log == nil {
		return
	}
	if err != nil {
		c.cfg.Log.Info("vault token not revoked; it lives until its lease ends", "reason", err.Error())
		return
	}
	c.cfg.Log.Debug("vault token revoked")
}

// revokeGrace is the least time a revoke gets: when the steps before it
// used up the call's budget, the Vault token must still be revoked, or it
// lives out its lease.
const revokeGrace = time.Second

// revokeContext is ctx's budget for the revoke, and at least revokeGrace
// from now even when ctx has ended.
func revokeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(revokeGrace)
	if d, ok := ctx.Deadline(); ok && d.After(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

func (v Vault) revokeSelf(ctx context.Context, c *Client, vaultToken string) error {
	req, err := v.newRequest(ctx, c, http.MethodPost, "/v1/auth/token/revoke-self", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", vaultToken)
	resp, err := c.http.HTTPClient.Do(req.Request) // one try, no retries: a failure costs no more time
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := c.readAnswer(ctx, resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("vault revoke at %s failed %s; the Vault token stays valid until its lease ends: let the login role's policies update auth/token/revoke-self (the default policy does) and keep the role's token_ttl short",
			c.Host(), vaultSaid(resp.StatusCode, vaultMessage(body, vaultToken)))
	}
	return nil
}

// vaultErrors is Vault's error answer.
type vaultErrors struct {
	Errors []string `json:"errors"`
}

// vaultMessage is the first message of Vault's error answer in body, on one
// line and at most 200 characters; "" when there is none, or when it holds
// any 8-character piece of one of secrets: Vault may quote its input back.
func vaultMessage(body []byte, secrets ...string) string {
	var e vaultErrors
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	msg := strings.Join(strings.Fields(e.Errors[0]), " ")
	for _, s := range secrets {
		if echoes(msg, s) {
			return ""
		}
	}
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "…"
	}
	return msg
}

// vaultSaid is the status and Vault's message, for an error: (HTTP 403:
// "permission denied").
func vaultSaid(code int, msg string) string {
	if msg == "" {
		return fmt.Sprintf("(HTTP %d)", code)
	}
	return fmt.Sprintf("(HTTP %d: %q)", code, msg)
}

// describeLease is a Vault lease for doctor; zero is a token without one.
func describeLease(seconds int64) string {
	if seconds <= 0 {
		return "none"
	}
	return (time.Duration(min(seconds, vaultTTLCap)) * time.Second).String()
}
