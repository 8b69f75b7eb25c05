package kubeworld

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// APIServer is a kube-apiserver the test started, and an admin client for
// it. Its ServiceAccount issuer is its own URL, so it serves its OIDC
// discovery document and keys at the issuer's address (to anonymous callers
// only once RBAC lets system:unauthenticated use
// system:service-account-issuer-discovery).
type APIServer struct {
	Name  string
	URL   string // https://127.0.0.1:PORT, also the ServiceAccount issuer
	CAPEM []byte // the CA of its serving certificate
	// Admin authenticates with a system:masters client certificate.
	Admin     *rest.Config
	AdminHTTP *http.Client
	Client    kubernetes.Interface
	proc      *Process
	args      []string
}

// NewAPIServer prepares the kube-apiserver binary bin on a free loopback
// port with its own serving certificate from ca, ServiceAccount signing key
// and etcd prefix (/NAME), RBAC authorization, plus extra flags. The admin
// client, a certificate of ca in system:masters, works once the server is
// started.
func NewAPIServer(t testing.TB, bin string, ca *PKI, name, etcdURL string, extra ...string) *APIServer {
	t.Helper()
	port := FreePort(t)
	a := &APIServer{Name: name, URL: "https://127.0.0.1:" + strconv.Itoa(port), CAPEM: ca.CAPEM}
	serving := ca.Serving(t, name)
	saKey, saPub := ca.SigningKey(t, name)
	a.args = append([]string{bin,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--etcd-servers=" + etcdURL, "--etcd-prefix=/" + name,
		"--tls-cert-file=" + serving.CertFile, "--tls-private-key-file=" + serving.KeyFile,
		"--client-ca-file=" + ca.CAFile,
		"--service-account-issuer=" + a.URL, "--service-account-jwks-uri=" + a.URL + "/openid/v1/jwks",
		"--service-account-signing-key-file=" + saKey, "--service-account-key-file=" + saPub,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none", "--profiling=false", "--enable-priority-and-fairness=false",
	}, extra...)
	admin := ca.Client(t, "e2e-admin-"+name, "system:masters")
	a.Admin = &rest.Config{Host: a.URL, TLSClientConfig: rest.TLSClientConfig{
		CAData: ca.CAPEM, CertData: admin.CertPEM, KeyData: admin.KeyPEM}}
	var err error
	if a.AdminHTTP, err = rest.HTTPClientFor(a.Admin); err != nil {
		t.Fatal(err)
	}
	if a.Client, err = kubernetes.NewForConfigAndClient(a.Admin, a.AdminHTTP); err != nil {
		t.Fatal(err)
	}
	return a
}

// Start runs the server; wait for it with WaitReady.
func (a *APIServer) Start(t testing.TB) {
	t.Helper()
	a.proc = Start(t, a.Name, nil, a.args...)
}

// WaitReady waits until /readyz answers 200.
func (a *APIServer) WaitReady(t testing.TB) {
	t.Helper()
	a.proc.WaitReady(t, func(ctx context.Context) error { return HTTPOK(ctx, a.AdminHTTP, a.URL+"/readyz") })
}
