package vault

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/brokercred/brokercred/e2e/kube/kubeworld"
	"github.com/brokercred/brokercred/internal/testkit"
)

// TestVaultRecipe runs docs/vault.md once per auth method, each against its
// own Vault, and then brokercred and kubectl through what it set up.
func TestVaultRecipe(t *testing.T) {
	needAll(t)
	w := setUp(t, readRecipe(t))
	for _, m := range methods {
		t.Run(m, func(t *testing.T) { w.testMethod(t, m) })
	}
}

// method is one auth method's run: its Vault, working directory and the
// exec entry the recipe's kubeconfig holds.
type method struct {
	*world
	name  string // the auth method, also its mount
	vault *vaultServer
	dir   string // the recipe's current directory
	// command and args are the kubeconfig's exec entry.
	command string
	args    []string
}

// testMethod runs the recipe's script for the auth method name against its
// Vault, with an audit log, then the checks in order: the first waits until
// the API server trusts that Vault, which the others rely on.
func (w *world) testMethod(t *testing.T, name string) {
	m := &method{world: w, name: name, vault: w.vaults[name], dir: t.TempDir()}
	m.vault.enableAudit(t, t.TempDir())
	kubeworld.WriteFile(t, m.dir, "cluster-ca.crt", w.api.CAPEM)
	kubeworld.WriteFile(t, m.dir, "dev-cluster-ca.crt", w.api.CAPEM)
	m.runScript(t, name, m.dir, w.recipe.script(name), m.vault)
	m.readKubeconfig(t)

	t.Run("identity token", m.testIdentityToken)
	t.Run("kubectl", m.testKubectl)
	t.Run("refused", m.testRefused)
	t.Run("no Vault token left", m.testNoTokenLeft)
}

// readKubeconfig reads the exec entry of the kubeconfig the recipe wrote.
func (m *method) readKubeconfig(t *testing.T) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(m.kubeconfigFile())
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.AuthInfos[ctx.AuthInfo] == nil || cfg.AuthInfos[ctx.AuthInfo].Exec == nil {
		t.Fatalf("the recipe's kubeconfig has no exec user in its current context %q", cfg.CurrentContext)
	}
	if server := cfg.Clusters[ctx.Cluster].Server; server != m.api.URL {
		t.Fatalf("the recipe's kubeconfig points at %s, want %s", server, m.api.URL)
	}
	exec := cfg.AuthInfos[ctx.AuthInfo].Exec
	m.command, m.args = exec.Command, exec.Args
}

func (m *method) kubeconfigFile() string { return filepath.Join(m.dir, "dev.kubeconfig") }

// brokercred runs the kubeconfig's exec entry as client-go would, with
// flag changes ("--name=value" replaces any --name), in a fresh
// environment and so with an empty cache.
func (m *method) brokercred(t *testing.T, changes ...string) testkit.Result {
	t.Helper()
	args := slices.Clone(m.args)
	for _, change := range changes {
		name, _, _ := strings.Cut(change, "=")
		args = slices.DeleteFunc(args, func(a string) bool { return a == name || strings.HasPrefix(a, name+"=") })
		args = append(args, change)
	}
	return testkit.Run(t, m.env(t), m.command, args...)
}

// testIdentityToken: one brokercred run costs one login, one identity
// token and one revoke-self; the token is Vault's, RS256, for dev-cluster,
// lives the role's 60 s, names the ServiceAccount, and brokercred reports
// its expiry the refresh margin early. The API server takes it as
// remoteUser once it has fetched Vault's keys.
func (m *method) testIdentityToken(t *testing.T) {
	before := m.vault.costs(t, m.name)
	r := m.brokercred(t)
	if r.Code != 0 {
		t.Fatalf("brokercred: exit %d, stderr %q", r.Code, m.redact(r.Stderr))
	}
	m.noTokenIn(t, "stderr", r.Stderr)
	cred := parseCredential(t, r.Stdout)
	m.secrets = append(m.secrets, cred.token)
	if got, want := m.vault.costs(t, m.name).minus(before), (cost{1, 1, 1}); got != want {
		t.Errorf("one brokercred run cost %s at Vault, want %s", got, want)
	}

	header, claims := decodeJWT(t, cred.token)
	if header.Alg != "RS256" {
		t.Errorf("the identity token is signed %s, want RS256 (the key's algorithm)", header.Alg)
	}
	if want := m.vault.url + "/v1/identity/oidc"; claims.Issuer != want {
		t.Errorf("the identity token's iss is %q, want %q", claims.Issuer, want)
	}
	if claims.Audience != clientID {
		t.Errorf("the identity token's aud is %q, want %q (the role's client_id)", claims.Audience, clientID)
	}
	if life := claims.Expiry - claims.IssuedAt; life != tokenTTL {
		t.Errorf("the identity token lives %d s, want %d s (the role's ttl)", life, tokenTTL)
	}
	wantClaims := map[string]map[string]string{
		"jwt":        {"username": subject(controller)},
		"kubernetes": {"k8s_namespace": argocdNS, "k8s_serviceaccount": controller},
	}[m.name]
	for name, want := range wantClaims {
		if got := claims.extra[name]; got != want {
			t.Errorf("the identity token's %s claim is %v, want %q (the role's template)", name, got, want)
		}
	}
	exp := time.Unix(claims.Expiry, 0)
	if latest, earliest := exp.Add(-refreshMargin), exp.Add(-refreshMargin-6*time.Second); cred.expiry.After(latest) || cred.expiry.Before(earliest) {
		t.Errorf("brokercred reported expiry %s for a token that expires %s; want the %s refresh margin before it, give or take the request's time",
			cred.expiry.Format(time.RFC3339), exp.Format(time.RFC3339), refreshMargin)
	}
	m.waitTrusted(t, cred.token)
}

// waitTrusted waits until the API server takes token as remoteUser: it
// fetches Vault's discovery document and keys by itself, retrying while
// Vault's issuer was not yet configured.
func (m *method) waitTrusted(t *testing.T, token string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := m.whoAmI(token)
		if err == nil && got == remoteUser(controller) {
			return
		}
		if err == nil || time.Now().After(deadline) {
			t.Fatalf("the API server does not take Vault's token as %s: got %q, %v", remoteUser(controller), got, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// testKubectl: kubectl through the recipe's kubeconfig lists namespaces,
// is told it is remoteUser, and is Forbidden what RBAC does not grant; the
// three runs share one token: one login, one identity token, one
// revoke-self.
func (m *method) testKubectl(t *testing.T) {
	env := m.env(t, "KUBECONFIG="+m.kubeconfigFile())
	run := func(args ...string) testkit.Result {
		r := testkit.Run(t, env, kubectl, args...)
		m.noTokenIn(t, "the output of kubectl "+strings.Join(args, " "), r.Stdout+r.Stderr)
		return r
	}
	before := m.vault.costs(t, m.name)
	if r := run("get", "namespaces", "-o", "name"); r.Code != 0 || !slices.Contains(strings.Fields(r.Stdout), "namespace/"+argocdNS) {
		t.Errorf("kubectl get namespaces: exit %d, stdout %q, stderr %q; want namespace/%s listed", r.Code, m.redact(r.Stdout), m.redact(r.Stderr), argocdNS)
	}
	if r := run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); r.Code != 0 || r.Stdout != remoteUser(controller) {
		t.Errorf("kubectl auth whoami: exit %d, stdout %q, stderr %q; want %s", r.Code, m.redact(r.Stdout), m.redact(r.Stderr), remoteUser(controller))
	}
	want := fmt.Sprintf("User %q cannot list resource \"secrets\"", remoteUser(controller))
	if r := run("get", "secrets", "-n", argocdNS); r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Errorf("kubectl get secrets: exit %d, stderr %q; want Forbidden: %s", r.Code, m.redact(r.Stderr), want)
	}
	if got, want := m.vault.costs(t, m.name).minus(before), (cost{1, 1, 1}); got != want {
		t.Errorf("three kubectl runs cost %s at Vault, want %s (one token, cached)", got, want)
	}
}

// missingRole is an identity role the test adds to the login role's policy
// but not to Vault, so that Vault answers that it does not exist.
const missingRole = "missing"

// testRefused: a login role Vault does not have, an identity role the
// login role's policy does not grant, one it grants that Vault does not
// have, and a ServiceAccount the login role does not bind each end in one
// stderr line that names the problem and quotes Vault, exit 1, nothing on
// stdout, and cost Vault exactly the requests up to the refusal, a
// revoke-self included whenever a login succeeded.
func (m *method) testRefused(t *testing.T) {
	m.vault.grant(t, "argocd", "identity/oidc/token/"+missingRole)
	host := strings.TrimPrefix(m.vault.url, "https://")
	vaultSaid := map[string]map[string]string{
		"jwt": {
			"login role": `role "nope" could not be found`,
			"account":    `error validating claims: claim "sub" does not match any associated bound claim values`,
		},
		"kubernetes": {
			"login role": `invalid role name "nope"`,
			"account":    `service account name not authorized`,
		},
	}[m.name]
	accountCode := map[string]int{"jwt": 400, "kubernetes": 403}[m.name]
	for _, c := range []struct {
		name    string
		changes []string
		want    string
		cost    cost
	}{
		{"login role Vault does not have", []string{"--vault-login-role=nope"},
			fmt.Sprintf("vault login at %s refused (HTTP 400: %q): auth/%s role \"nope\" for %q", host, vaultSaid["login role"], m.name, subject(controller)),
			cost{1, 0, 0}},
		{"identity role outside the login role's policy", []string{"--vault-token-role=prod"},
			fmt.Sprintf("vault token at %s denied for identity role \"prod\" (HTTP 403: %q); the policy of login role \"argocd\" needs read on identity/oidc/token/prod", host, "1 error occurred: * permission denied"),
			cost{1, 1, 1}},
		{"identity role the policy allows but Vault does not have", []string{"--vault-token-role=" + missingRole},
			fmt.Sprintf("vault token at %s: no identity token role %q (HTTP 400: %q); create it", host, missingRole, fmt.Sprintf("role %q not found", missingRole)),
			cost{1, 1, 1}},
		{"ServiceAccount the login role does not bind", []string{"--token-file=" + m.tokenFiles[repoServer]},
			fmt.Sprintf("vault login at %s refused (HTTP %d: %q): auth/%s role \"argocd\" for %q, audience %q", host, accountCode, vaultSaid["account"], m.name, subject(repoServer), podAudience),
			cost{1, 0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := m.vault.costs(t, m.name)
			r := m.brokercred(t, c.changes...)
			if r.Code != 1 || r.Stdout != "" {
				t.Errorf("exit %d, %d bytes on stdout; want exit 1 and nothing on stdout", r.Code, len(r.Stdout))
			}
			m.noTokenIn(t, "stderr", r.Stderr)
			line, _ := strings.CutSuffix(r.Stderr, "\n")
			if strings.Contains(line, "\n") || !strings.Contains(line, c.want) {
				t.Errorf("stderr = %q, want one line containing %q", m.redact(r.Stderr), c.want)
			}
			if got := m.vault.costs(t, m.name).minus(before); got != c.cost {
				t.Errorf("cost %s at Vault, want %s", got, c.cost)
			}
		})
	}
}

// testNoTokenLeft: every Vault token brokercred got is revoked; only the
// root token lives.
func (m *method) testNoTokenLeft(t *testing.T) {
	if alive := m.vault.liveTokens(t); len(alive) > 0 {
		t.Errorf("Vault tokens still alive after the runs: %s", strings.Join(alive, "; "))
	}
}

// credential is what an ExecCredential on stdout says.
type credential struct {
	token  string
	expiry time.Time
}

func parseCredential(t *testing.T, stdout string) credential {
	t.Helper()
	var ec struct {
		Kind   string `json:"kind"`
		Status struct {
			Token               string    `json:"token"`
			ExpirationTimestamp time.Time `json:"expirationTimestamp"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(stdout), &ec); err != nil || ec.Kind != "ExecCredential" || ec.Status.Token == "" || ec.Status.ExpirationTimestamp.IsZero() {
		t.Fatalf("stdout is not an ExecCredential with a token and an expiry (%v)", err)
	}
	return credential{token: ec.Status.Token, expiry: ec.Status.ExpirationTimestamp}
}

// jwtHeader and jwtClaims are the parts of an identity token the test
// checks; extra holds every claim.
type jwtHeader struct {
	Alg string `json:"alg"`
}

type jwtClaims struct {
	Issuer   string `json:"iss"`
	Audience string `json:"aud"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	extra    map[string]any
}

// decodeJWT reads a JWT's header and claims, unverified (the API server
// verifies it), failing the test without quoting it.
func decodeJWT(t *testing.T, token string) (jwtHeader, jwtClaims) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("the identity token has %d parts, want 3", len(parts))
	}
	var h jwtHeader
	var c jwtClaims
	for i, into := range []any{&h, &c, &c.extra} {
		data, err := base64.RawURLEncoding.DecodeString(parts[min(i, 1)])
		if err == nil {
			err = json.Unmarshal(data, into)
		}
		if err != nil {
			t.Fatalf("part %d of the identity token does not decode: %v", min(i, 1)+1, err)
		}
	}
	return h, c
}
