package dex

import (
	"github.com/brokercred/brokercred/internal/testkit"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// processTimeout bounds one brokercred process.
const processTimeout = time.Minute

const (
	podSubject = "system:serviceaccount:argocd:argocd-application-controller"
	// argocdClient is the Dex client brokercred authenticates as.
	argocdClient = "argocd"
	// target is the remote cluster: a Dex client that trusts argocdClient,
	// so argocd may ask for tokens with target in aud.
	target = "dev-cluster"
	// lockedTarget is a Dex client that trusts no peer.
	lockedTarget = "locked-cluster"
	// idTokenTTL is Dex's expiry.idTokens.
	idTokenTTL = time.Minute

	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// rig is a ServiceAccount issuer, a Dex that trusts it through an oidc
// connector, and the files a pod has to call Dex.
type rig struct {
	pki        *pki
	issuer     *saIssuer
	dex        *dex
	dir        string
	tokenFile  string // the pod's projected token
	podToken   string
	secret     string // argocd's client secret
	secretFile string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{dir: t.TempDir()}
	r.pki = newPKI(t, r.dir)
	r.issuer = newSAIssuer(t, r.pki)
	r.secret = randomID(t)
	r.secretFile = r.write(t, "client-secret", r.secret+"\n")
	r.podToken = r.issuer.podToken(t, podSubject, podAudience, time.Hour)
	r.tokenFile = r.write(t, "token", r.podToken)

	var cfg dexConfig
	cfg.OAuth2.GrantTypes = []string{"authorization_code", "refresh_token", grantTokenExchange}
	cfg.Expiry.IDTokens = idTokenTTL.String()
	cfg.StaticClients = []dexClient{
		{ID: argocdClient, Secret: r.secret, Name: "Argo CD"},
		{ID: target, Secret: randomID(t), Name: "dev cluster", TrustedPeers: []string{argocdClient}},
		{ID: lockedTarget, Secret: randomID(t), Name: "locked cluster"},
	}
	cfg.Connectors = []dexConnector{{Type: "oidc", ID: connectorID, Name: "Kubernetes", Config: map[string]any{
		"issuer":  r.issuer.URL,
		"rootCAs": []string{r.pki.caFile},
		// Dex verifies an id_token subject token against the issuer's JWKS
		// itself; getUserInfo would call a userinfo endpoint Kubernetes
		// does not have.
		"getUserInfo": false,
		// ServiceAccount tokens carry no name claim.
		"userNameKey": "sub",
		// Nor an email: with the default scopes (profile, email) Dex
		// refuses a token without one.
		"scopes":                    []string{"openid"},
		"insecureSkipEmailVerified": true,
	}}}
	r.dex = startDex(t, r.pki, r.dir, cfg)
	return r
}

func (r *rig) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// call is one brokercred invocation's settings.
type call struct {
	cacheDir     string
	tokenFile    string // default: the pod's token
	secretFile   string // default: argocd's secret
	connector    string // default: connectorID; "-" for none
	subjectType  string // default: brokercred's
	scopes       []string
	targetScoped bool // ask for target in aud (cross-client scope)
}

// args are the exec args a cluster's kubeconfig or Argo CD Secret holds.
func (r *rig) args(c call) []string {
	args := []string{"token",
		"--protocol", "token-exchange",
		"--broker-url", r.dex.tokenURL(),
		"--ca-file", r.pki.caFile,
		"--client-id", argocdClient,
		"--client-secret-file", or(c.secretFile, r.secretFile),
		"--token-file", or(c.tokenFile, r.tokenFile),
		"--target", target,
		"--cache-dir", c.cacheDir,
	}
	if conn := or(c.connector, connectorID); conn != "-" {
		args = append(args, "--connector-id", conn)
	}
	if c.subjectType != "" {
		args = append(args, "--subject-token-type", c.subjectType)
	}
	for _, s := range c.scopes {
		args = append(args, "--scope", s)
	}
	if c.targetScoped {
		args = append(args, "--scope", "audience:server:client_id:"+target)
	}
	return args
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// result is what one brokercred process left behind.
type result struct {
	code           int
	stdout, stderr string
}

func runBrokercred(t *testing.T, args []string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokercredBin, args...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run brokercred: %v", err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// redact hides the test's secrets in text bound for a failure message.
func (r *rig) redact(s string) string {
	for _, secret := range []string{r.podToken, r.secret} {
		s = strings.ReplaceAll(s, secret, "<redacted>")
	}
	return s
}

// execCredential is the part of brokercred's output the tests read.
type execCredential struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Status     struct {
		Token               string    `json:"token"`
		ExpirationTimestamp time.Time `json:"expirationTimestamp"`
	} `json:"status"`
}

// credential parses a successful run's ExecCredential; its failures never
// quote stdout, which holds the token.
func (r *rig) credential(t *testing.T, res result) execCredential {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("brokercred exit %d, stderr: %s", res.code, r.redact(res.stderr))
	}
	var cred execCredential
	if err := json.Unmarshal([]byte(res.stdout), &cred); err != nil {
		t.Fatalf("stdout (%d bytes) is not JSON: %v", len(res.stdout), err)
	}
	if cred.Kind != "ExecCredential" || cred.APIVersion != "client.authentication.k8s.io/v1" || cred.Status.Token == "" {
		t.Fatalf("stdout is kind %q apiVersion %q with a token of %d bytes, want a v1 ExecCredential with a token",
			cred.Kind, cred.APIVersion, len(cred.Status.Token))
	}
	return cred
}

func restConfig(api *apiStub, p *pki, args []string) *rest.Config {
	return &rest.Config{
		Host:            api.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM},
		ExecProvider: &clientcmdapi.ExecConfig{
			Command:         brokercredBin,
			Args:            args,
			APIVersion:      "client.authentication.k8s.io/v1",
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
		},
	}
}

// dexSubject decodes Dex's sub claim: a base64 protobuf of the upstream
// user ID (field 1) and the connector ID (field 2).
func dexSubject(t *testing.T, sub string) (userID, connID string) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(sub)
	if err != nil {
		t.Fatalf("dex sub %q is not base64url: %v", sub, err)
	}
	for len(b) >= 2 {
		field, n := b[0]>>3, int(b[1])
		if b[0]&7 != 2 || n >= 0x80 || len(b) < 2+n {
			t.Fatalf("dex sub %q is not the protobuf Dex writes", sub)
		}
		switch field {
		case 1:
			userID = string(b[2 : 2+n])
		case 2:
			connID = string(b[2 : 2+n])
		}
		b = b[2+n:]
	}
	return userID, connID
}

func TestDexTokenExchange(t *testing.T) {
	r := newRig(t)

	t.Run("client-go through brokercred, then brokercred's cache", func(t *testing.T) {
		api := newAPIStub(t, r.pki, newVerifier(t, r.pki, r.dex.issuer, target))
		args := r.args(call{cacheDir: t.TempDir(), scopes: []string{"openid", "profile"}, targetScoped: true})
		before := r.dex.exchange.Load()

		got, err := testkit.ServerVersion(restConfig(api, r.pki, args))
		if err != nil {
			_, _, why := api.last()
			t.Fatalf("ServerVersion: %v (API stub's last refusal: %v)", err, why)
		}
		if got != stubVersion {
			t.Errorf("server version %q, want %q", got, stubVersion)
		}
		if a, rj := api.accepted.Load(), api.rejected.Load(); a != 1 || rj != 0 {
			t.Errorf("API stub accepted %d and rejected %d requests, want 1 and 0", a, rj)
		}
		if n := r.dex.exchange.Load() - before; n != 1 {
			t.Errorf("%d token requests reached Dex, want 1", n)
		}
		claims, sum, _ := api.last()
		if claims.AZP != argocdClient || !sameSet(claims.Audience, []string{target, argocdClient}) {
			t.Errorf("aud %q azp %q, want aud [%s %s] and azp %s", claims.Audience, claims.AZP, target, argocdClient, argocdClient)
		}
		if claims.Name != podSubject {
			t.Errorf("name %q, want the pod's ServiceAccount %q (userNameKey: sub, scope profile)", claims.Name, podSubject)
		}
		if user, conn := dexSubject(t, claims.Subject); user != podSubject || conn != connectorID {
			t.Errorf("dex sub holds user %q connector %q, want %q and %q", user, conn, podSubject, connectorID)
		}
		if life := time.Duration(claims.Expiry-claims.IssuedAt) * time.Second; life != idTokenTTL {
			t.Errorf("token lives %s, want Dex's expiry.idTokens %s", life, idTokenTTL)
		}

		// A second process with the same cache: the token client-go used,
		// without asking Dex again.
		start := time.Now()
		cred := r.credential(t, runBrokercred(t, args))
		if sha256.Sum256([]byte(cred.Status.Token)) != sum {
			t.Error("second brokercred process printed another token than the one the API stub accepted")
		}
		if n := r.dex.exchange.Load() - before; n != 1 {
			t.Errorf("after the second process %d token requests reached Dex, want 1 (a cache hit)", n)
		}
		exp := cred.Status.ExpirationTimestamp
		if !exp.After(start) || exp.After(time.Unix(claims.Expiry, 0)) {
			t.Errorf("expirationTimestamp %s, want after now (%s) and not after the token's exp %s",
				exp, start.Format(time.RFC3339), time.Unix(claims.Expiry, 0).UTC().Format(time.RFC3339))
		}
	})

	t.Run("audience is ignored: aud is the client", func(t *testing.T) {
		before := r.dex.exchange.Load()
		// brokercred sends audience=dev-cluster; Dex issues for argocd.
		cred := r.credential(t, runBrokercred(t, r.args(call{cacheDir: t.TempDir()})))
		if n := r.dex.exchange.Load() - before; n != 1 {
			t.Errorf("%d token requests reached Dex, want 1", n)
		}
		claims, err := newVerifier(t, r.pki, r.dex.issuer, argocdClient).verify(cred.Status.Token)
		if err != nil {
			t.Fatalf("Dex's token does not verify for %s: %v", argocdClient, err)
		}
		if !sameSet(claims.Audience, []string{argocdClient}) || claims.Name != "" {
			t.Errorf("aud %q name %q, want aud [%s] and no name without scope profile", claims.Audience, claims.Name, argocdClient)
		}
		if _, err := newVerifier(t, r.pki, r.dex.issuer, target).verify(cred.Status.Token); err == nil {
			t.Errorf("a token without the cross-client scope verifies for %s", target)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		wrongSecret := r.write(t, "wrong-secret", "not-"+r.secret)
		otherKey := newRSAKey(t)
		forged := r.write(t, "forged-token", signPodToken(t, r.issuer.URL, otherKey, keyID(t, &otherKey.PublicKey), podSubject, podAudience, time.Hour))
		// Signed by the trusted key, but naming an issuer Dex has no connector for.
		foreign := r.write(t, "foreign-token", signPodToken(t, "https://other-cluster.example", r.issuer.key, r.issuer.kid, podSubject, podAudience, time.Hour))
		for _, tc := range []struct {
			name string
			call call
			// want are the parts of brokercred's one stderr line.
			want []string
			// dexLog, if set, are the parts of a line Dex logged.
			dexLog []string
		}{
			{name: "wrong client secret", call: call{secretFile: wrongSecret},
				want: []string{`"invalid_client" ("Invalid client credentials.")`, `--client-id "argocd"`}},
			{name: "pod token signed by an untrusted key", call: call{tokenFile: forged},
				want:   []string{`refused the token exchange: "access_denied";`},
				dexLog: []string{"failed to verify subject token", "oidc: failed to verify token"}},
			{name: "pod token naming another issuer", call: call{tokenFile: foreign},
				want:   []string{`refused the token exchange: "access_denied";`},
				dexLog: []string{"failed to verify subject token", "issued by a different provider"}},
			{name: "no connector_id", call: call{connector: "-"},
				want: []string{`"invalid_request" ("Requested connector does not exist.")`}},
			{name: "subject token type jwt", call: call{subjectType: "urn:ietf:params:oauth:token-type:jwt"},
				want: []string{`"request_not_supported" ("Invalid subject_token_type.")`}},
			{name: "cross-client scope for a peer that does not trust argocd", call: call{scopes: []string{"audience:server:client_id:" + lockedTarget}},
				want: []string{`refused the token exchange: "server_error";`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.call.cacheDir = t.TempDir()
				before := r.dex.exchange.Load()
				res := runBrokercred(t, r.args(tc.call))
				stderr := strings.TrimSuffix(res.stderr, "\n")
				t.Logf("brokercred stderr: %s", r.redact(stderr))
				if res.code == 0 || res.stdout != "" {
					t.Errorf("exit %d with %d bytes on stdout, want a failure and no stdout", res.code, len(res.stdout))
				}
				if stderr == "" || strings.Contains(stderr, "\n") {
					t.Errorf("stderr is not one line: %q", r.redact(res.stderr))
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr %q does not hold %q", r.redact(stderr), w)
					}
				}
				if strings.Contains(res.stderr, r.podToken) || strings.Contains(res.stderr, r.secret) {
					t.Error("stderr quotes the pod token or the client secret")
				}
				if r.dex.exchange.Load() == before {
					t.Error("no token request reached Dex")
				}
				if tc.dexLog != nil && !r.dex.logHas(tc.dexLog...) {
					t.Errorf("Dex logged no line with %q", tc.dexLog)
				}
			})
		}
	})
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
