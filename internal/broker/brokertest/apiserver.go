package brokertest

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// APIServerVersion is the gitVersion an APIServer reports for GET /version.
const APIServerVersion = "v1.34.0-brokertest"

// APIServer is a fake Kubernetes API server that answers GET /version to
// callers holding a token the broker issued for its target, and 401 to others.
type APIServer struct {
	// URL is the server's base URL, for a kubeconfig's cluster.server.
	URL string

	srv      *httptest.Server
	broker   *Server
	target   string
	accepted atomic.Int64
	rejected atomic.Int64

	mu      sync.Mutex
	refused map[string]bool // tokens turned away although valid
}

// NewAPIServer starts an API stub that trusts broker's tokens for target.
func NewAPIServer(broker *Server, target string) *APIServer {
	a := &APIServer{broker: broker, target: target}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	a.URL = a.srv.URL
	return a
}

// Close shuts the server down.
func (a *APIServer) Close() { a.srv.Close() }

// CAFile writes the server's certificate as PEM into dir and returns its path.
func (a *APIServer) CAFile(dir string) string {
	return writeCert(a.srv, filepath.Join(dir, "api-ca.pem"))
}

// CAData is the server's certificate as base64 PEM, for a kubeconfig's
// certificate-authority-data or an Argo CD cluster Secret's caData.
func (a *APIServer) CAData() string {
	return base64.StdEncoding.EncodeToString(a.CAPEM())
}

// CAPEM is the server's certificate as PEM.
func (a *APIServer) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw})
}

// RefuseIssued makes the server turn away every token the broker has
// issued so far, although they are valid and unexpired: what a remote
// cluster does after the broker's signing key rotated, or after it stopped
// trusting the tokens already out. Tokens issued later are accepted.
func (a *APIServer) RefuseIssued() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refused == nil {
		a.refused = map[string]bool{}
	}
	for _, tok := range a.broker.Issued() {
		a.refused[tok] = true
	}
}

func (a *APIServer) isRefused(token string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refused[token]
}

// Accepted and Rejected count the requests the server let in and turned away.
func (a *APIServer) Accepted() int64 { return a.accepted.Load() }

// Rejected counts the requests the server turned away with 401.
func (a *APIServer) Rejected() int64 { return a.rejected.Load() }

func (a *APIServer) serve(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if a.broker.Verify(token, a.target, time.Now()) != nil || a.isRefused(token) {
		a.rejected.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`))
		return
	}
	a.accepted.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"major":"1","minor":"34","gitVersion":"` + APIServerVersion + `","platform":"linux/amd64"}`))
}
