package vault

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/brokercred/brokercred/e2e/kube/kubeworld"
	"github.com/brokercred/brokercred/internal/testkit"
)

const (
	argocdNS    = "argocd"
	controller  = "argocd-application-controller" // bound by both login roles
	repoServer  = "argocd-repo-server"            // bound by neither
	podAudience = "vault"                         // of the pod tokens, as the login roles require
	clientID    = "dev-cluster"                   // the identity role dev's client_id: the tokens' aud
	tokenTTL    = 60                              // that role's ttl, in seconds
	// refreshMargin is brokercred's default --refresh-margin: it reports
	// expiry this much before the token's.
	refreshMargin = 10 * time.Second
)

// subject is the username of ServiceAccount sa of the argocd namespace.
func subject(sa string) string { return "system:serviceaccount:" + argocdNS + ":" + sa }

// remoteUser is the name the API server gives Vault's tokens for sa.
func remoteUser(sa string) string { return "vault:" + subject(sa) }

// world is one kube-apiserver, both the control plane that issues the pod
// tokens and the remote cluster that trusts Vault, and one Vault per auth
// method.
type world struct {
	recipe     recipe
	api        *kubeworld.APIServer
	vaults     map[string]*vaultServer // by auth method
	bin        string                  // vault, brokercred and kubectl, for the recipe's PATH
	kubeconfig string                  // admin, contexts control-plane and dev-cluster
	tokenFiles map[string]string       // ServiceAccount -> its pod token
	secrets    []string                // what redact hides
}

// setUp starts etcd, a Vault per method and the API server, whose
// AuthenticationConfiguration is the recipe's, then creates the
// ServiceAccounts and their pod tokens and runs the recipe's remote block.
func setUp(t *testing.T, r recipe) *world {
	t.Helper()
	w := &world{recipe: r, vaults: map[string]*vaultServer{}, tokenFiles: map[string]string{}}
	for _, m := range methods {
		w.vaults[m] = startVault(t, "vault-"+m)
	}
	ca := kubeworld.NewPKI(t)
	etcdURL := kubeworld.StartEtcd(t, etcd)
	var jwts []any
	for _, m := range methods {
		v := w.vaults[m]
		v.waitReady(t)
		w.secrets = append(w.secrets, v.root)
		jwts = append(jwts, r.authenticator(t, m, v.url, v.caPEM))
	}
	authn, _ := json.Marshal(map[string]any{"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AuthenticationConfiguration", "jwt": jwts})
	dir := t.TempDir()
	w.api = kubeworld.NewAPIServer(t, kubeAPIServer, ca, "cluster", etcdURL,
		"--authentication-config="+kubeworld.WriteFile(t, dir, "authentication-config.json", authn))
	w.api.Start(t)
	w.api.WaitReady(t)
	w.bin = w.programs(t)
	w.kubeconfig = w.adminKubeconfig(t, dir)
	w.podTokens(t, dir)
	w.runScript(t, "remote", dir, r.only(t, "sh", "remote"), nil)
	return w
}

// programs links vault, brokercred and kubectl into one directory for the
// recipe's PATH.
func (w *world) programs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, path := range map[string]string{"vault": vaultBin, "brokercred": brokercred, "kubectl": kubectl} {
		if err := os.Symlink(path, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// adminKubeconfig writes a kubeconfig with the recipe's two contexts, both
// the API server as its admin, and returns its path.
func (w *world) adminKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: w.api.URL, CertificateAuthorityData: w.api.CAPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: w.api.Admin.CertData, ClientKeyData: w.api.Admin.KeyData}
	for _, name := range []string{"control-plane", "dev-cluster"} {
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "admin"}
	}
	path := filepath.Join(dir, "admin.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// podTokens creates the argocd ServiceAccounts and gets each a pod token
// for Vault through the TokenRequest API, as the kubelet projects one.
func (w *world) podTokens(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	c := w.api.Client.CoreV1()
	if _, err := c.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: argocdNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []string{controller, repoServer} {
		if _, err := c.ServiceAccounts(argocdNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ttl := int64(3600)
		tr, err := c.ServiceAccounts(argocdNS).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{podAudience}, ExpirationSeconds: &ttl},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest for %s: %v", sa, err)
		}
		w.secrets = append(w.secrets, tr.Status.Token)
		w.tokenFiles[sa] = kubeworld.WriteFile(t, dir, sa+".token", []byte(tr.Status.Token))
	}
}

// runScript runs script with bash in dir, the recipe's example addresses
// and paths replaced by those of the Vault v (none for nil) and the API
// server, and fails the test unless it succeeds.
func (w *world) runScript(t *testing.T, name, dir, script string, v *vaultServer) {
	t.Helper()
	replace := []string{exampleControlPlane, w.api.URL, exampleRemote, w.api.URL, examplePodToken, w.tokenFiles[controller]}
	env := []string{"KUBECONFIG=" + w.kubeconfig}
	if v != nil {
		replace = append(replace, exampleVault, v.url, exampleVaultCA, v.caFile)
		env = append(env, "VAULT_ADDR="+v.url, "VAULT_CACERT="+v.caFile, "VAULT_TOKEN="+v.root)
	}
	file := kubeworld.WriteFile(t, dir, name+".sh", []byte(strings.NewReplacer(replace...).Replace(script)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eu", "-o", "pipefail", "-x", file)
	cmd.Dir, cmd.Env = dir, w.env(t, env...)
	out, err := cmd.CombinedOutput()
	if data, readErr := os.ReadFile(filepath.Join(dir, "reviewer.jwt")); readErr == nil {
		w.secrets = append(w.secrets, strings.TrimSpace(string(data)))
	}
	if err != nil {
		t.Fatalf("the recipe's %s script failed (%v); its trace:\n%s", name, err, w.redact(string(out)))
	}
}

// env is the environment of every process the test runs: testkit.Env (no
// BROKERCRED_*, KUBECONFIG, fresh HOME and XDG_CACHE_HOME) without VAULT_*,
// the programs first on PATH, plus extra.
func (w *world) env(t *testing.T, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range testkit.Env(t) {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+w.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return append(env, extra...)
}

// tokenShapes match what looks like a JWT or a Vault service, batch or
// recovery token.
var tokenShapes = regexp.MustCompile(`eyJ[\w-]*\.[\w-]*\.[\w-]*|\bhv[sbr]\.[\w-]{20,}`)

// redact hides in s every secret the test knows of (the pod tokens, the
// Vault root tokens, the reviewer tokens and the identity tokens seen so
// far) and anything shaped like a JWT or a Vault token.
func (w *world) redact(s string) string {
	for _, secret := range w.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "<redacted>")
		}
	}
	return tokenShapes.ReplaceAllString(s, "<redacted token>")
}

// noTokenIn fails the test if s holds anything redact hides, without
// printing it.
func (w *world) noTokenIn(t *testing.T, what, s string) {
	t.Helper()
	if w.redact(s) != s {
		t.Errorf("%s holds a token", what)
	}
}

// whoAmI asks the API server who the bearer of token is (a SelfSubjectReview).
func (w *world) whoAmI(token string) (string, error) {
	cfg := &rest.Config{Host: w.api.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: w.api.CAPEM}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return r.Status.UserInfo.Username, nil
}
