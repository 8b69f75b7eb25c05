package argocd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/common"
	jwtutil "github.com/argoproj/argo-cd/v3/util/jwt"
	"github.com/argoproj/argo-cd/v3/util/rbac"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brokercred/brokercred/internal/testkit"
)

const (
	ciNamespace = "ci"
	// deployer is the ServiceAccount the generated RBAC grants.
	deployer = "deployer"
	// intruder is a ServiceAccount of the same cluster it does not.
	intruder = "intruder"
	// appPattern is the generated grant's --app: guestbook-dev is covered,
	// billing is not.
	appPattern = "guestbook-*"
)

// check is one RBAC question argocd-server asks for an argocd CLI command.
type check struct{ resource, action, object string }

var (
	// granted are the checks `argocd app get` and `argocd app sync` pass
	// for an application of the granted pattern in project default.
	granted = []check{
		{rbac.ResourceApplications, rbac.ActionGet, "default/guestbook-dev"},
		{rbac.ResourceApplications, rbac.ActionSync, "default/guestbook-dev"},
		{rbac.ResourceProjects, rbac.ActionGet, "default"},
	}
	// beyond are checks outside the grant: another action, another
	// application, another project.
	beyond = []check{
		{rbac.ResourceApplications, rbac.ActionDelete, "default/guestbook-dev"},
		{rbac.ResourceApplications, rbac.ActionUpdate, "default/guestbook-dev"},
		{rbac.ResourceApplications, rbac.ActionGet, "default/billing"},
		{rbac.ResourceApplications, rbac.ActionGet, "other/guestbook-dev"},
		{rbac.ResourceProjects, rbac.ActionGet, "other"},
		{rbac.ResourceClusters, rbac.ActionGet, "*"},
	}
)

// rig is a ServiceAccount issuer, an Argo CD whose Dex trusts it through the
// generated connector, brokercred, and the files a CI pod has.
type rig struct {
	pki    *pki
	issuer *saIssuer
	argo   *argoCD
	bin    string
	dir    string
}

func newRig(t testing.TB, bin string, args ...string) *rig {
	t.Helper()
	r := &rig{bin: bin, dir: t.TempDir()}
	r.pki = newPKI(t, r.dir)
	r.issuer = newSAIssuer(t, r.pki)
	r.argo = startArgoCD(t, bin, r.pki, r.issuer, append([]string{
		"--service-account", ciNamespace + ":" + deployer, "--project", "default", "--app", appPattern,
	}, args...)...)
	return r
}

// projectedAudience is the audience the generated CI pod's token volume
// asks the kubelet for.
func (r *rig) projectedAudience(t testing.TB) string {
	t.Helper()
	for _, v := range r.argo.generated.pod.Spec.Volumes {
		if v.Projected != nil && len(v.Projected.Sources) == 1 && v.Projected.Sources[0].ServiceAccountToken != nil {
			return v.Projected.Sources[0].ServiceAccountToken.Audience
		}
	}
	t.Fatal("the generated CI pod has no projected ServiceAccount token")
	return ""
}

// printTokenArgs are the generated CI pod's `brokercred run` flags as a
// `brokercred print-token` call: the pod's token file and cache replaced by
// the test's, and the test CA trusted for Argo CD.
func (r *rig) printTokenArgs(t testing.TB, tokenFile, cacheDir string) []string {
	t.Helper()
	args := r.argo.generated.pod.Spec.Containers[0].Args
	dash := -1
	for i, a := range args {
		if a == "--" {
			dash = i
			break
		}
	}
	if len(args) == 0 || args[0] != "run" || dash < 0 {
		t.Fatalf("generated CI pod args %q are not run FLAGS -- COMMAND", args)
	}
	out := []string{"print-token"}
	for _, a := range args[1:dash] {
		switch {
		case strings.HasPrefix(a, "--token-file="):
			a = "--token-file=" + tokenFile
		case strings.HasPrefix(a, "--cache-dir="):
			a = "--cache-dir=" + cacheDir
		}
		out = append(out, a)
	}
	return append(out, "--ca-file="+r.pki.caFile)
}

// exchange runs brokercred print-token, as the CI pod's brokercred run
// would, for podToken, and returns the Dex token. It fails the test unless
// brokercred succeeds; no failure message quotes a token.
func (r *rig) exchange(t testing.TB, podToken string) string {
	t.Helper()
	res := r.printToken(t, podToken, t.TempDir())
	if res.Code != 0 {
		t.Fatalf("brokercred print-token: exit %d, stderr: %s", res.Code, r.redact(res.Stderr, podToken))
	}
	tok, ok := strings.CutSuffix(res.Stdout, "\n")
	if !ok || strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("print-token stdout (%d bytes) is not one JWT and a newline", len(res.Stdout))
	}
	return tok
}

func (r *rig) printToken(t testing.TB, podToken, cacheDir string) testkit.Result {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(podToken), 0o600); err != nil {
		t.Fatal(err)
	}
	return testkit.Run(t, testkit.Env(t), r.bin, r.printTokenArgs(t, file, cacheDir)...)
}

// redact hides tokens in text bound for a failure message.
func (r *rig) redact(s string, tokens ...string) string {
	for _, tok := range tokens {
		if tok != "" {
			s = strings.ReplaceAll(s, tok, "<redacted>")
		}
	}
	return s
}

// TestArgoCDAPI is the recipe of docs/argocd-api.md end to end: the
// argocd-cm and argocd-rbac-cm that `brokercred config argocd-api` prints go
// through Argo CD's own settings and Dex config generation, a real Dex runs
// that config behind Argo CD's /api/dex proxy, brokercred exchanges pod
// tokens there with the generated CI pod's flags, and Argo CD's session
// manager and RBAC enforcer judge the result.
func TestArgoCDAPI(t *testing.T) {
	bin := testkit.BuildBrokercred(t, filepath.Join("..", ".."))
	r := newRig(t, bin)
	aud := r.projectedAudience(t)

	t.Run("granted ServiceAccount", func(t *testing.T) {
		tok := r.exchange(t, r.issuer.podToken(t, ciNamespace, deployer, aud))
		claims, err := r.argo.verify(tok)
		if err != nil {
			t.Fatalf("Argo CD refused the exchanged token: %v", err)
		}
		if got, want := jwtutil.GetUserIdentifier(claims), "system:serviceaccount:ci:deployer"; got != want {
			t.Fatalf("Argo CD's RBAC subject = %q, want %q (federated_claims.user_id)", got, want)
		}
		for _, c := range granted {
			if err := r.argo.authorize(tok, c.resource, c.action, c.object); err != nil {
				t.Errorf("%s %s %s: %v, want allowed", c.resource, c.action, c.object, err)
			}
		}
		for _, c := range beyond {
			if err := r.argo.authorize(tok, c.resource, c.action, c.object); status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s %s %s: %v, want permission denied", c.resource, c.action, c.object, err)
			}
		}
	})

	t.Run("another ServiceAccount", func(t *testing.T) {
		// Dex exchanges any token of the issuer; Argo CD RBAC refuses it.
		tok := r.exchange(t, r.issuer.podToken(t, ciNamespace, intruder, aud))
		for _, c := range granted {
			if err := r.argo.authorize(tok, c.resource, c.action, c.object); status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s %s %s: %v, want permission denied", c.resource, c.action, c.object, err)
			}
		}
	})

	t.Run("default token of the granted ServiceAccount (dexidp/dex#4397)", func(t *testing.T) {
		// The pod's automounted token is for the API server, not Argo CD,
		// yet Dex v2.45 exchanges it: it does not check the subject token's
		// audience. This is why the recipe never sets policy.default. The
		// day Dex checks the audience this fails, and docs/argocd-api.md
		// and SECURITY.md can say so.
		tok := r.exchange(t, r.issuer.podToken(t, ciNamespace, deployer, apiServerAudience))
		if err := r.argo.authorize(tok, rbac.ResourceApplications, rbac.ActionGet, "default/guestbook-dev"); err != nil {
			t.Errorf("token exchanged from the API server token: %v, want allowed (Dex ignores the audience)", err)
		}
	})

	t.Run("tampered token", func(t *testing.T) {
		// The intruder's Dex token, edited to name the granted
		// ServiceAccount; the signature stays the intruder's.
		tok := r.exchange(t, r.issuer.podToken(t, ciNamespace, intruder, aud))
		claims := claimsOf(t, tok)
		fed, _ := claims["federated_claims"].(map[string]any)
		if fed == nil {
			t.Fatal("Dex's token has no federated_claims; is federated:id among the scopes?")
		}
		fed["user_id"] = "system:serviceaccount:ci:deployer"
		forged := withClaims(t, tok, claims)
		if err := r.argo.authorize(forged, rbac.ResourceApplications, rbac.ActionGet, "default/guestbook-dev"); !errors.Is(err, common.ErrTokenVerification) {
			t.Errorf("tampered token: %v, want %v", err, common.ErrTokenVerification)
		}
	})

	t.Run("pod token of another signer", func(t *testing.T) {
		// Same issuer URL, a key the issuer does not publish: Dex refuses
		// the exchange and brokercred says so on one line.
		other := &saIssuer{key: newRSAKey(t), kid: r.issuer.kid}
		other.Server = r.issuer.Server
		pod := other.podToken(t, ciNamespace, deployer, aud)
		res := r.printToken(t, pod, t.TempDir())
		if res.Code == 0 || res.Stdout != "" {
			t.Fatalf("print-token with a forged pod token: exit %d, %d bytes on stdout; want a failure and nothing on stdout", res.Code, len(res.Stdout))
		}
		if strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 || !strings.Contains(res.Stderr, "access_denied") {
			t.Errorf("stderr = %q, want one line with Dex's access_denied", r.redact(res.Stderr, pod))
		}
		if strings.Contains(res.Stderr, pod) {
			t.Error("stderr holds the pod token")
		}
	})

	t.Run("policy.default refused", func(t *testing.T) {
		res := testkit.Run(t, testkit.Env(t), bin, "config", "argocd-api", "--url", r.argo.url, "--issuer", r.issuer.URL,
			"--service-account", "ci:deployer", "--image", "registry.example.com/ci/argocd:test", "--policy-default", "role:readonly")
		lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
		if res.Code != 1 || res.Stdout != "" || len(lines) != 1 || !strings.Contains(res.Stderr, "dexidp/dex#4397") {
			t.Errorf("config argocd-api --policy-default: exit %d, %d bytes on stdout, stderr %q; want exit 1, nothing on stdout and one line naming dexidp/dex#4397",
				res.Code, len(res.Stdout), res.Stderr)
		}
	})

	t.Run("cached within the token's life", func(t *testing.T) {
		pod := r.issuer.podToken(t, ciNamespace, deployer, aud)
		cacheDir := t.TempDir()
		before := r.argo.exchanges.Load()
		first, second := r.printToken(t, pod, cacheDir), r.printToken(t, pod, cacheDir)
		if first.Code != 0 || second.Code != 0 {
			t.Fatalf("print-token exits %d and %d, stderr: %s", first.Code, second.Code, r.redact(first.Stderr+second.Stderr, pod))
		}
		if first.Stdout != second.Stdout {
			t.Error("the second print-token printed another token than the first")
		}
		if n := r.argo.exchanges.Load() - before; n != 1 {
			t.Errorf("%d exchanges at Argo CD's Dex for two print-token calls, want 1", n)
		}
	})
}

// TestArgoCDAPIExpiredToken: with --id-token-expiry, Dex's tokens die on
// time, and Argo CD accepts one while it lives and refuses it after.
func TestArgoCDAPIExpiredToken(t *testing.T) {
	const life = 10 * time.Second
	bin := testkit.BuildBrokercred(t, filepath.Join("..", ".."))
	r := newRig(t, bin, "--id-token-expiry", life.String())
	tok := r.exchange(t, r.issuer.podToken(t, ciNamespace, deployer, r.projectedAudience(t)))
	exp, ok := claimsOf(t, tok)["exp"].(float64)
	if !ok {
		t.Fatal("Dex's token has no exp")
	}
	expiry := time.Unix(int64(exp), 0)
	if d := time.Until(expiry); d > life+time.Second {
		t.Fatalf("Dex's token expires in %s, want at most %s: --id-token-expiry did not reach Dex", d.Round(time.Second), life)
	}
	object := "default/guestbook-dev"
	switch err := r.argo.authorize(tok, rbac.ResourceApplications, rbac.ActionGet, object); {
	case err == nil:
	case time.Now().Before(expiry):
		t.Fatalf("fresh token: %v, want allowed", err)
	default:
		t.Logf("the token expired before it could be checked fresh (a loaded machine); only its refusal is checked")
	}
	// Wait for the expiry: a state of the token, not a timing claim.
	time.Sleep(time.Until(expiry) + time.Second)
	// Argo CD tries each allowed audience in turn; the first (argo-cd) fails
	// on the audience, so the expiry surfaces as a plain verification error,
	// without the claims {iss: sso} it gives an expired UI session.
	if _, err := r.argo.verify(tok); !errors.Is(err, common.ErrTokenVerification) {
		t.Fatalf("expired token: %v, want %v", err, common.ErrTokenVerification)
	}
	if err := r.argo.authorize(tok, rbac.ResourceApplications, rbac.ActionGet, object); err == nil {
		t.Error("expired token was authorized")
	}
}
