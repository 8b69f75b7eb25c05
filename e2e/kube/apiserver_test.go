package kube

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiServer is a kube-apiserver the test started, and an admin client for it.
type apiServer struct {
	name  string
	url   string
	caPEM []byte
	// admin authenticates with a system:masters client certificate.
	admin      *rest.Config
	adminHTTP  *http.Client
	client     kubernetes.Interface
	proc       *process
	args       []string
	etcdPrefix string
}

// newAPIServer prepares the kube-apiserver binary bin on a free loopback port
// with its own serving certificate, ServiceAccount signing key and etcd
// prefix, plus extra flags. The admin client works as soon as the server is
// started.
func newAPIServer(t *testing.T, bin string, ca *pki, admin keyPair, name, etcdURL string, extra ...string) *apiServer {
	t.Helper()
	port := freePort(t)
	a := &apiServer{name: name, url: "https://127.0.0.1:" + strconv.Itoa(port), caPEM: ca.caPEM, etcdPrefix: "/" + name}
	serving := ca.serving(t, name)
	saKey, saPub := ca.signingKey(t, name)
	a.args = append([]string{bin,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--etcd-servers=" + etcdURL, "--etcd-prefix=" + a.etcdPrefix,
		"--tls-cert-file=" + serving.certFile, "--tls-private-key-file=" + serving.keyFile,
		"--client-ca-file=" + ca.caFile,
		"--service-account-issuer=https://" + name + ".kubernetes.default.svc",
		"--service-account-signing-key-file=" + saKey, "--service-account-key-file=" + saPub,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none", "--profiling=false", "--enable-priority-and-fairness=false",
	}, extra...)
	a.admin = &rest.Config{Host: a.url, TLSClientConfig: rest.TLSClientConfig{
		CAData: ca.caPEM, CertData: admin.certPEM, KeyData: admin.keyPEM}}
	var err error
	if a.adminHTTP, err = rest.HTTPClientFor(a.admin); err != nil {
		t.Fatal(err)
	}
	if a.client, err = kubernetes.NewForConfigAndClient(a.admin, a.adminHTTP); err != nil {
		t.Fatal(err)
	}
	return a
}

// start runs the server; wait for it with waitReady.
func (a *apiServer) start(t *testing.T) {
	t.Helper()
	a.proc = start(t, a.name, a.args...)
}

// waitReady waits until /readyz answers 200.
func (a *apiServer) waitReady(t *testing.T) {
	t.Helper()
	a.proc.waitReady(t, func(ctx context.Context) error { return httpOK(ctx, a.adminHTTP, a.url+"/readyz") })
}
