package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/brokercred/brokercred/e2e/kube/kubeworld"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

const (
	argocdNS   = "argocd"
	controller = "argocd-application-controller" // allowed; kubectl and the long-running client
	server     = "argocd-server"                 // allowed; revoked by the revocation test
	repoServer = "argocd-repo-server"            // not in the broker's allow rule

	audience       = "token-broker" // of the pod tokens, checked by the broker's TokenReview
	target         = "remote-east"  // the remote cluster, the audience of broker tokens
	teamNS         = "team-a"       // where the broker identities may read ConfigMaps
	usernamePrefix = "broker:"      // the remote cluster's prefix for broker subjects
	tokenTTL       = 15 * time.Second
	greeting       = "hello from the remote cluster"
)

// subject is the username of ServiceAccount sa of the argocd namespace.
func subject(sa string) string { return "system:serviceaccount:" + argocdNS + ":" + sa }

// world is the whole scenario: a control plane that issues pod tokens, the
// fake broker that reviews them there, and a remote cluster that trusts it.
type world struct {
	control, remote *kubeworld.APIServer
	broker          *brokertest.Server
	dir             string
	brokerCA        string            // file
	tokenFiles      map[string]string // ServiceAccount name -> projected-token-like file
	authnFile       string            // the remote's AuthenticationConfiguration, reloaded when rewritten
}

// setUp starts etcd, both API servers (the kube-apiserver binary bin) and the
// broker, and creates the ServiceAccounts, pod tokens and RBAC the tests use.
func setUp(t *testing.T, bin string) *world {
	t.Helper()
	ca := kubeworld.NewPKI(t)
	etcdURL := kubeworld.StartEtcd(t, etcd)
	w := &world{dir: t.TempDir(), tokenFiles: map[string]string{}}
	w.control = kubeworld.NewAPIServer(t, bin, ca, "control", etcdURL)
	w.broker = brokertest.NewServer(brokertest.Options{
		TTL:    tokenTTL,
		Allow:  []string{subject(controller), subject(server)},
		Review: brokertest.TokenReview(w.control.AdminHTTP, w.control.URL, audience),
	})
	t.Cleanup(w.broker.Close)
	w.brokerCA = w.broker.CAFile(w.dir)
	w.authnFile = kubeworld.WriteFile(t, w.dir, "authentication-config.json", authenticationConfig(jwtAuthenticator(w.broker, 0)))
	w.remote = kubeworld.NewAPIServer(t, bin, ca, "remote", etcdURL, "--authentication-config="+w.authnFile)
	w.control.Start(t)
	w.remote.Start(t)
	w.control.WaitReady(t)
	w.remote.WaitReady(t)
	w.setUpControlPlane(t)
	w.setUpRemote(t)
	w.waitBrokerTrusted(t)
	return w
}

// authenticationConfig is the remote API server's AuthenticationConfiguration
// with the given JWT authenticators.
func authenticationConfig(jwts ...map[string]any) []byte {
	data, _ := json.Marshal(map[string]any{
		"apiVersion": "apiserver.config.k8s.io/v1",
		"kind":       "AuthenticationConfiguration",
		"jwt":        jwts,
	})
	return data
}

// jwtAuthenticator trusts broker b's tokens for target, with usernames
// "broker:" + sub. A non-zero issuedAfter refuses every token issued at or
// before that Unix time (a claimValidationRules entry), as a remote cluster
// does that stopped trusting the tokens already out.
func jwtAuthenticator(b *brokertest.Server, issuedAfter int64) map[string]any {
	a := map[string]any{
		"issuer": map[string]any{
			"url":                  b.Issuer(),
			"certificateAuthority": string(b.CAPEM()),
			"audiences":            []string{target},
		},
		"claimMappings": map[string]any{
			"username": map[string]any{"claim": "sub", "prefix": usernamePrefix},
		},
	}
	if issuedAfter != 0 {
		a["claimValidationRules"] = []any{map[string]any{
			"expression": fmt.Sprintf("claims.iat > %d", issuedAfter),
			"message":    "token issued before the cutoff",
		}}
	}
	return a
}

// setUpControlPlane creates the argocd ServiceAccounts and mints each a pod
// token with the broker's audience through the TokenRequest API.
func (w *world) setUpControlPlane(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c := w.control.Client.CoreV1()
	must(t, create(c.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: argocdNS}}, metav1.CreateOptions{})))
	for _, sa := range []string{controller, server, repoServer} {
		must(t, create(c.ServiceAccounts(argocdNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})))
		ttl := int64(600) // the TokenRequest API's minimum
		tr, err := c.ServiceAccounts(argocdNS).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &ttl},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest for %s: %v", sa, err)
		}
		w.tokenFiles[sa] = kubeworld.WriteFile(t, w.dir, sa+".token", []byte(tr.Status.Token))
	}
}

// setUpRemote creates a ConfigMap in teamNS and lets the broker identities
// of controller and server get and list ConfigMaps there, nothing else.
func (w *world) setUpRemote(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c := w.remote.Client
	must(t, create(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNS}}, metav1.CreateOptions{})))
	must(t, create(c.CoreV1().ConfigMaps(teamNS).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"}, Data: map[string]string{"greeting": greeting},
	}, metav1.CreateOptions{})))
	must(t, create(c.RbacV1().Roles(teamNS).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "configmap-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{})))
	var subjects []rbacv1.Subject
	for _, sa := range []string{controller, server} {
		subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: usernamePrefix + subject(sa)})
	}
	must(t, create(c.RbacV1().RoleBindings(teamNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-via-broker"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "configmap-reader"},
		Subjects:   subjects,
	}, metav1.CreateOptions{})))
}

// waitBrokerTrusted waits until the remote API server has fetched the
// broker's keys by OIDC discovery and authenticates a broker token.
func (w *world) waitBrokerTrusted(t *testing.T) {
	t.Helper()
	token := w.broker.Issue(target, subject(controller), time.Now().Add(time.Minute))
	want := usernamePrefix + subject(controller)
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := whoAmI(w.remote, token)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the remote API server does not authenticate broker tokens as %s: got %q, %v", want, got, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// whoAmI asks api who the bearer of token is (a SelfSubjectReview).
func whoAmI(api *kubeworld.APIServer, token string) (string, error) {
	cfg := &rest.Config{Host: api.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: api.CAPEM}}
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

// pluginArgs are the exec args of a cluster entry that gets tokens for
// target with the pod token in tokenFile, caching in cacheDir.
func (w *world) pluginArgs(tokenFile, cacheDir string) []string {
	return []string{
		"--broker-url", w.broker.URL, "--ca-file", w.brokerCA,
		"--token-file", tokenFile, "--target", target, "--cache-dir", cacheDir,
	}
}

// execConfig runs brokercred the way a kubeconfig or an Argo CD cluster
// Secret's execProviderConfig does.
func (w *world) execConfig(sa, cacheDir string) *clientcmdapi.ExecConfig {
	return &clientcmdapi.ExecConfig{
		Command: brokercred, Args: w.pluginArgs(w.tokenFiles[sa], cacheDir),
		APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
	}
}

// remoteConfig is a client-go config for the remote cluster as sa's broker identity.
func (w *world) remoteConfig(sa, cacheDir string) *rest.Config {
	return &rest.Config{Host: w.remote.URL, TLSClientConfig: rest.TLSClientConfig{CAData: w.remote.CAPEM}, ExecProvider: w.execConfig(sa, cacheDir)}
}

// kubeconfig writes a kubeconfig for the remote cluster as sa's broker
// identity and returns its path.
func (w *world) kubeconfig(t *testing.T, sa, cacheDir string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[target] = &clientcmdapi.Cluster{Server: w.remote.URL, CertificateAuthorityData: w.remote.CAPEM}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Exec: w.execConfig(sa, cacheDir)}
	cfg.Contexts[target] = &clientcmdapi.Context{Cluster: target, AuthInfo: sa}
	cfg.CurrentContext = target
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// fetches counts the broker requests for target by sub so far.
func (w *world) fetches(sub string) int {
	n := 0
	for _, r := range w.broker.Requests() {
		if r.Subject == sub && r.Target == target {
			n++
		}
	}
	return n
}

// redact replaces every token the broker issued and every pod token in s,
// so that failure messages never show one.
func (w *world) redact(s string) string {
	secrets := w.broker.Issued()
	for _, f := range w.tokenFiles {
		if data, err := os.ReadFile(f); err == nil && len(data) > 0 {
			secrets = append(secrets, string(data))
		}
	}
	for _, tok := range secrets {
		s = strings.ReplaceAll(s, tok, "<redacted token>")
	}
	return s
}

// noTokenIn fails the test if s holds a token (the redacted form differs).
func (w *world) noTokenIn(t *testing.T, what, s string) {
	t.Helper()
	if w.redact(s) != s {
		t.Errorf("%s contains a token", what)
	}
}

// result is what one process left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runCmd runs argv with exactly env, bounded by a minute.
func runCmd(t *testing.T, env []string, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("run %s: %v", filepath.Base(argv[0]), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// runBrokercred runs brokercred as client-go would, with no BROKERCRED_* env.
func runBrokercred(t *testing.T, args []string) result {
	t.Helper()
	return runCmd(t, []string{"PATH=" + os.Getenv("PATH")}, append([]string{brokercred}, args...)...)
}

// credential is what an ExecCredential on stdout says.
type credential struct {
	token  string
	expiry time.Time
}

// parseCredential reads brokercred's ExecCredential.
func parseCredential(t *testing.T, stdout string) credential {
	t.Helper()
	var ec struct {
		Kind   string `json:"kind"`
		Status struct {
			Token               string    `json:"token"`
			ExpirationTimestamp time.Time `json:"expirationTimestamp"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(stdout), &ec); err != nil || ec.Kind != "ExecCredential" || ec.Status.Token == "" {
		t.Fatalf("stdout is not an ExecCredential with a token (%v)", err)
	}
	return credential{token: ec.Status.Token, expiry: ec.Status.ExpirationTimestamp}
}

// oneLine checks that stderr is exactly one line containing want.
func (w *world) oneLine(t *testing.T, stderr, want string) {
	t.Helper()
	line, _ := strings.CutSuffix(stderr, "\n")
	if strings.Contains(line, "\n") || !strings.Contains(line, want) {
		t.Errorf("stderr = %q, want one line containing %q", w.redact(stderr), want)
	}
}

// create drops the object of a Create call.
func create[T any](_ T, err error) error { return err }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
