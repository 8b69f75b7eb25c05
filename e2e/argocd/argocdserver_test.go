package argocd

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	applisters "github.com/argoproj/argo-cd/v3/pkg/client/listers/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/server/rbacpolicy"
	"github.com/argoproj/argo-cd/v3/util/assets"
	dexutil "github.com/argoproj/argo-cd/v3/util/dex"
	"github.com/argoproj/argo-cd/v3/util/rbac"
	"github.com/argoproj/argo-cd/v3/util/session"
	"github.com/argoproj/argo-cd/v3/util/settings"
	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/brokercred/brokercred/internal/testkit"
)

const (
	argoCDNamespace = "argocd"
	// dexStartTimeout bounds Dex's start: it generates its signing key then.
	dexStartTimeout = time.Minute
	// partOf is the label Argo CD's settings informers select by.
	partOf = "app.kubernetes.io/part-of"
)

// argoCD is the part of an Argo CD install that serves its API to a token
// from its bundled Dex, run in process from Argo CD v3.3's own packages:
// settings read from argocd-cm and argocd-secret (util/settings), Dex's
// config generated from them (util/dex, what argocd-dex rundex runs) and
// served by a real Dex, Dex behind the server's /api/dex reverse proxy
// (util/dex), token verification (util/session's SessionManager, as
// argocd-server builds it) and RBAC (util/rbac with server/rbacpolicy's
// claims enforcer, loaded from argocd-rbac-cm as argocd-server loads it).
type argoCD struct {
	url       string // argocd-cm's url: the server in front of Dex
	generated generated
	sessions  *session.SessionManager
	enforcer  *rbac.Enforcer
	dexLog    *syncBuffer
	exchanges atomic.Int64 // requests to /api/dex/token
}

// generated is what `brokercred config argocd-api` printed, parsed.
type generated struct {
	argoCDCM, rbacCM corev1.ConfigMap
	pod              corev1.Pod
}

// startArgoCD runs `bin config argocd-api` for this Argo CD and issuer with
// args, stores its ConfigMaps, and starts Dex and the server from them.
func startArgoCD(t testing.TB, bin string, p *pki, issuer *saIssuer, args ...string) *argoCD {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &argoCD{url: "https://" + listener.Addr().String(), dexLog: &syncBuffer{}}
	a.generated = generate(t, bin, append([]string{
		"--url", a.url, "--issuer", issuer.URL, "--issuer-ca-file", p.caFile, "--image", "registry.example.com/ci/argocd:test",
	}, args...)...)

	clientset := fake.NewClientset(&a.generated.argoCDCM, &a.generated.rbacCM, argoCDSecret(t, p))
	settingsMgr := settings.NewSettingsManager(ctx, clientset, argoCDNamespace)
	s, err := settingsMgr.GetSettings()
	if err != nil {
		t.Fatalf("Argo CD settings from the generated argocd-cm: %v", err)
	}
	if !s.IsDexConfigured() {
		t.Fatal("Argo CD does not see Dex configured in the generated argocd-cm")
	}
	dexAddr := a.startDex(t, p, s)

	// argocd-server's Dex client settings with --dex-server-strict-tls:
	// trust the CA, and only Dex's own certificate.
	dexTLS := &dexutil.DexTLSConfig{StrictValidation: true, RootCAs: p.pool, Certificate: p.leaf}
	proxy := dexutil.NewDexHTTPReverseProxy(dexAddr, "/", dexTLS)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/dex/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/dex/token" {
			a.exchanges.Add(1)
		}
		proxy(w, r)
	})
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{*s.Certificate}}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ServeTLS(listener, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	projects := projectLister(t, "default", "other")
	a.sessions = session.NewSessionManager(settingsMgr, projects, dexAddr, dexTLS, session.NewUserStateStorage(nil))
	a.enforcer = loadRBAC(t, clientset, projects)
	return a
}

// generate runs `bin config argocd-api` and parses its documents strictly
// into core/v1 types.
func generate(t testing.TB, bin string, args ...string) generated {
	t.Helper()
	res := testkit.Run(t, testkit.Env(t), bin, append([]string{"config", "argocd-api"}, args...)...)
	if res.Code != 0 || res.Stderr != "" {
		t.Fatalf("brokercred config argocd-api: exit %d, stderr: %s", res.Code, res.Stderr)
	}
	docs := strings.Split(res.Stdout, "---\n")
	if len(docs) != 3 {
		t.Fatalf("brokercred config argocd-api printed %d documents, want argocd-cm, argocd-rbac-cm and one pod", len(docs))
	}
	var g generated
	for i, into := range []any{&g.argoCDCM, &g.rbacCM, &g.pod} {
		if err := yaml.UnmarshalStrict([]byte(docs[i]), into); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
	}
	return g
}

// argoCDSecret is argocd-secret as an install has it: the server's signing
// key and its TLS certificate.
func argoCDSecret(t testing.TB, p *pki) *corev1.Secret {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-secret", Namespace: argoCDNamespace, Labels: map[string]string{partOf: "argocd"}},
		Data:       map[string][]byte{"server.secretkey": key, "tls.crt": p.certPEM, "tls.key": p.keyPEM},
	}
}

// startDex writes the Dex config Argo CD generates from s, as argocd-dex
// rundex does, and runs Dex with it until the test ends. Only the listen
// addresses and the TLS files change: Argo CD fixes them at 0.0.0.0:5556-5558
// and /tmp/tls.*, which a test sharing its machine cannot use.
func (a *argoCD) startDex(t testing.TB, p *pki, s *settings.ArgoCDSettings) string {
	t.Helper()
	// argocd-dex-server's container has these from argocd-cmd-params-cm
	// (dexserver.log.level, dexserver.log.format); Argo CD copies them
	// into Dex's logger config, which refuses an empty level.
	t.Setenv("ARGOCD_LOG_LEVEL", "debug")
	t.Setenv("ARGOCD_LOG_FORMAT", "json")
	out, err := dexutil.GenerateDexConfigYAML(s, false)
	if err != nil {
		t.Fatalf("Argo CD's Dex config from the generated argocd-cm: %v", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg["web"] = map[string]any{"https": addr, "tlsCert": p.certFile, "tlsKey": p.keyFile}
	cfg["grpc"] = map[string]any{"addr": freeAddr(t)}
	cfg["telemetry"] = map[string]any{"http": freeAddr(t)}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dex.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}

	bin := dexBinary(t)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", file)
	cmd.Stdout, cmd.Stderr = a.dexLog, a.dexLog
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start dex: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("dex log:\n%s", a.dexLog.String())
		}
	})
	// Ready once discovery answers at the issuer Argo CD set and the first
	// signing key is published.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}, Timeout: 5 * time.Second}
	base := "https://" + addr + "/api/dex"
	for deadline := time.Now().Add(dexStartTimeout); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("dex exited during start: %v\n%s", cmd.ProcessState, a.dexLog.String())
		default:
		}
		if ok(client, base+"/.well-known/openid-configuration") && ok(client, base+"/keys") {
			t.Logf("dex serving Argo CD's generated config after %s", time.Since(start).Round(time.Millisecond))
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("dex not ready at %s within %s", base, dexStartTimeout)
		}
	}
}

// projectLister lists AppProjects with the given names in Argo CD's
// namespace, as argocd-server's informer would.
func projectLister(t testing.TB, names ...string) applisters.AppProjectNamespaceLister {
	t.Helper()
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, name := range names {
		if err := indexer.Add(&appv1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: argoCDNamespace}}); err != nil {
			t.Fatal(err)
		}
	}
	return applisters.NewAppProjectLister(indexer).AppProjects(argoCDNamespace)
}

// loadRBAC builds the enforcer as argocd-server's NewServer does and loads
// argocd-rbac-cm as its rbacPolicyLoader does, scopes included, through
// Enforcer.RunPolicyLoader. The loader watches the ConfigMap until its
// context ends; the context ends as soon as the ConfigMap is read, so it
// loads the policy once and returns.
func loadRBAC(t testing.TB, clientset *fake.Clientset, projects applisters.AppProjectNamespaceLister) *rbac.Enforcer {
	t.Helper()
	enf := rbac.NewEnforcer(clientset, argoCDNamespace, "argocd-rbac-cm", nil)
	enf.EnableEnforce(true)
	if err := enf.SetBuiltinPolicy(assets.BuiltinPolicyCSV); err != nil {
		t.Fatal(err)
	}
	policyEnf := rbacpolicy.NewRBACPolicyEnforcer(enf, projects)
	enf.SetClaimsEnforcerFunc(policyEnf.EnforceClaims)
	ctx, loaded := context.WithCancel(context.Background())
	defer loaded()
	err := enf.RunPolicyLoader(ctx, func(cm *corev1.ConfigMap) error {
		defer loaded()
		var scopes []string
		if s := cm.Data[rbac.ConfigMapScopesKey]; s != "" {
			if err := yaml.Unmarshal([]byte(s), &scopes); err != nil {
				return fmt.Errorf("error unmarshalling scopes: %w", err)
			}
		}
		policyEnf.SetScopes(scopes)
		return nil
	})
	if err != nil {
		t.Fatalf("load argocd-rbac-cm: %v", err)
	}
	return enf
}

// authorize is what argocd-server does with a request's token: verify it
// (Authenticate → SessionManager.VerifyToken) and enforce RBAC on the
// verified claims (Enforcer.EnforceErr), as the application and project
// services do for resource, action and object.
func (a *argoCD) authorize(token, resource, action, object string) error {
	claims, _, err := a.sessions.VerifyToken(context.Background(), token)
	if err != nil {
		return fmt.Errorf("invalid session: %w", err)
	}
	return a.enforcer.EnforceErr(claims, resource, action, object)
}

// verify is SessionManager.VerifyToken's answer for token.
func (a *argoCD) verify(token string) (jwt.MapClaims, error) {
	claims, _, err := a.sessions.VerifyToken(context.Background(), token)
	mc, _ := claims.(jwt.MapClaims)
	return mc, err
}

// dexBinary is Dex built by e2e/dex/build.sh, which keeps one build per
// version: the first run on a machine compiles it (about five minutes of
// CPU), later ones only check it is there. The build gets the test's time
// less a minute.
func dexBinary(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	if d, ok := deadline(t); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Minute))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, filepath.Join("..", "dex", "build.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("e2e/dex/build.sh did not finish before the test's deadline less a minute; a cold build of Dex takes about five minutes of CPU: raise go test -timeout, or run e2e/dex/build.sh once first")
	}
	if err != nil {
		t.Fatalf("e2e/dex/build.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// deadline is the test's deadline; a benchmark has none.
func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}

func ok(c *http.Client, u string) bool {
	resp, err := c.Get(u)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// freeAddr is a loopback address with a port free a moment ago, for Dex,
// which takes its listen addresses from its config.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// syncBuffer collects a process's output from its copy goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
