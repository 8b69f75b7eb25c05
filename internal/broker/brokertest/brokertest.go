// Package brokertest runs a fake token broker and a fake Kubernetes API
// server over real TLS on loopback, for tests and the demo, the way
// net/http/httptest runs a fake server.
//
// One Server plays every protocol brokercred speaks, each at its own
// endpoint (Endpoint names it) and in its own file: OpenUnison's
// get-target-token, OAuth token exchange, the OAuth client-credentials grant
// with a client assertion, and Vault. Each mints minute-lived ES256 JWTs for
// the target asked for, and records every request by protocol (Requests).
// The API stub accepts only tokens that broker issued for its target and not
// yet expired.
package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value gives a Raw broker issuing
// one-minute tokens to anybody, without delay.
type Options struct {
	Shape   Shape
	TTL     time.Duration // lifetime of issued tokens; zero means one minute
	Latency time.Duration // delay before every answer
	// Allow lists the pod token subjects that may get tokens; empty allows any.
	Allow []string
	// NoExp issues tokens without an exp claim (and, for JSON shapes, no
	// expirationTimestamp).
	NoExp bool
	// ExpiredCert serves a self-signed certificate for 127.0.0.1 that
	// expired an hour ago (CAFile writes it), instead of httptest's.
	ExpiredCert bool
	// ClientID and ClientSecret are the OAuth client the token-exchange
	// endpoint requires: by HTTP Basic when ClientSecret is set, as the
	// client_id form field when only ClientID is. Both empty: any client.
	// The client-assertion endpoint requires ClientID as client_id when it
	// is set, and any client_id when it is empty.
	ClientID, ClientSecret string
	// Review, when set, authenticates every pod token before the allow rule
	// is applied, the way OpenUnison runs a TokenReview: it returns the
	// token's subject, and the broker answers 401 when it fails or names
	// another subject than the token's sub claim. TokenReview builds one.
	Review func(token string) (subject string, err error)
	// Vault configures the fake Vault under VaultPrefix.
	Vault VaultOptions
}

// Response is a canned answer that replaces the broker's next real one. The
// zero Status means 200. The fault switches below are off when zero.
type Response struct {
	Status int
	Header map[string]string
	Body   string

	// Hang holds the request without answering until the client gives up
	// or the server closes.
	Hang bool
	// Trickle sends the status and headers at once, then Body one byte per
	// Trickle: a slow body that a client waiting for all of it runs out of
	// time on.
	Trickle time.Duration
	// Reset drops the connection with a TCP reset instead of answering.
	Reset bool
	// Endless streams Body over and over until the client hangs up: an
	// answer larger than any cap.
	Endless bool
}

// Request records what one call asked for.
type Request struct {
	// Protocol is the protocol the request spoke, named as brokercred's
	// --protocol names it (one of Protocols).
	Protocol string
	Target   string
	Subject  string // sub of the pod token; empty when it was not a JWT
	// Authorization says whether the request carried an Authorization
	// header at all, whatever its form.
	Authorization bool
	// Form is the form an OAuth token request posted (token-exchange,
	// client-assertion) without the field that carried the pod token
	// (subject_token, client_assertion); nil for requests without one.
	Form url.Values
	// Vault is what a Vault API request carried; nil for other protocols'.
	Vault *VaultRequest
}

// Server is a running fake broker.
type Server struct {
	// URL is the get-target-token endpoint,
	// https://127.0.0.1:PORT/api/get-target-token: Endpoint("get-target-token").
	URL string

	srv  *httptest.Server
	key  *ecdsa.PrivateKey
	opts Options

	closing   chan struct{} // closed by Close, releases hung answers
	closeOnce sync.Once

	mu       sync.Mutex
	queue    []Response
	requests []Request
	issued   []string
	vault    map[string]*vaultSession // by Vault token
}

// NewServer starts a fake broker. Call Close when done.
func NewServer(opts Options) *Server {
	if opts.TTL == 0 {
		opts.TTL = time.Minute
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("brokertest: generate key: %v", err))
	}
	s := &Server{key: key, opts: opts, closing: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if opts.ExpiredCert {
		s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{expiredCert()}}
	}
	s.srv.StartTLS()
	s.URL = s.srv.URL + Path
	return s
}

// Close shuts the broker down, releasing any answer still hanging.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.srv.Close()
}

// CAFile writes the broker's certificate as PEM into dir and returns its path,
// for --ca-file.
func (s *Server) CAFile(dir string) string {
	return writeCert(s.srv, filepath.Join(dir, "broker-ca.pem"))
}

// Queue makes the next len(r) answers the given canned ones, in order.
func (s *Server) Queue(r ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, r...)
}

// Requests returns every request the broker received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Issued returns every token the broker minted so far (by answering or by
// Issue), delivered or not, so a test can check none of them leaked.
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// Secrets returns every secret the fake handed out so far: the tokens it
// minted (Issued) and the Vault tokens of its logins (VaultTokens), so a test
// can check none of them leaked.
func (s *Server) Secrets() []string {
	return append(s.Issued(), s.VaultTokens()...)
}

// route is how the fake serves one protocol: the protocol's name as
// brokercred's --protocol names it, the path of the endpoint --broker-url
// names, the paths it answers (endpoint alone, or every path under prefix
// when prefix is set), and its handler, which lives in the protocol's file.
type route struct {
	protocol string
	endpoint string
	prefix   string
	serve    func(s *Server, w http.ResponseWriter, r *http.Request)
}

// routes are the protocols the fake serves, one line each: a new protocol's
// fake is a file with its handler, and a line here.
func routes() []route {
	return []route{
		{protocol: "get-target-token", endpoint: Path, serve: (*Server).serveGetTargetToken},
		{protocol: "token-exchange", endpoint: ExchangePath, serve: (*Server).serveExchange},
		{protocol: "vault", prefix: VaultPrefix, serve: (*Server).serveVault},
		{protocol: "client-assertion", endpoint: ClientAssertionPath, serve: (*Server).serveClientAssertion},
	}
}

// Protocols lists the protocols the fake serves, by the names brokercred's
// --protocol gives them.
func Protocols() []string {
	var names []string
	for _, rt := range routes() {
		names = append(names, rt.protocol)
	}
	return names
}

// Endpoint is the --broker-url at which the fake serves protocol (one of
// Protocols), or "" for a protocol it does not serve.
func (s *Server) Endpoint(protocol string) string {
	for _, rt := range routes() {
		if rt.protocol == protocol {
			return s.srv.URL + rt.endpoint
		}
	}
	return ""
}

// routeOf is the route that answers path.
func routeOf(path string) (route, bool) {
	for _, rt := range routes() {
		if path == rt.endpoint && rt.prefix == "" || rt.prefix != "" && strings.HasPrefix(path, rt.prefix) {
			return rt, true
		}
	}
	return route{}, false
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.opts.Latency > 0 {
		time.Sleep(s.opts.Latency)
	}
	if rt, ok := routeOf(r.URL.Path); ok {
		rt.serve(s, w, r)
		return
	}
	if !s.serveOIDC(w, r) {
		http.NotFound(w, r)
	}
}

// record logs req, what r asked for, under r's protocol, and pops the next
// canned answer, if any.
func (s *Server) record(r *http.Request, req Request) (Response, bool) {
	rt, _ := routeOf(r.URL.Path)
	req.Protocol = rt.protocol
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	if len(s.queue) == 0 {
		return Response{}, false
	}
	canned := s.queue[0]
	s.queue = s.queue[1:]
	return canned, true
}

func (s *Server) writeCanned(w http.ResponseWriter, req *http.Request, r Response) {
	switch {
	case r.Hang:
		s.wait(req, -1)
		return
	case r.Reset:
		reset(w)
		return
	}
	for k, v := range r.Header {
		w.Header().Set(k, v)
	}
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	w.WriteHeader(r.Status)
	switch {
	case r.Trickle > 0:
		for i := range len(r.Body) {
			if !s.wait(req, r.Trickle) || !writeFlush(w, r.Body[i:i+1]) {
				return
			}
		}
	case r.Endless && r.Body != "":
		for writeFlush(w, r.Body) {
		}
	default:
		_, _ = w.Write([]byte(r.Body))
	}
}

// wait pauses for d (forever when d < 0) and reports false when the client
// or the server gave up first.
func (s *Server) wait(req *http.Request, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-req.Context().Done():
	case <-s.closing:
	}
	return false
}

func writeFlush(w http.ResponseWriter, s string) bool {
	if _, err := w.Write([]byte(s)); err != nil {
		return false
	}
	return http.NewResponseController(w).Flush() == nil
}

// reset drops the request's TCP connection with an RST, below TLS, so the
// client sees "connection reset by peer" rather than an orderly close.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(fmt.Sprintf("brokertest: hijack: %v", err))
	}
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

func (s *Server) allowed(sub string) bool {
	if len(s.opts.Allow) == 0 {
		return true
	}
	for _, a := range s.opts.Allow {
		if a == sub {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Issue mints a token for target and subject that expires at exp (without an
// exp claim when exp is zero or Options.NoExp is set), signed with the
// broker's key.
func (s *Server) Issue(target, subject string, exp time.Time) string {
	claims := map[string]any{"iss": s.srv.URL, "sub": subject, "aud": target, "iat": time.Now().Unix()}
	if !s.opts.NoExp && !exp.IsZero() {
		claims["exp"] = exp.Unix()
	}
	return s.mint(claims)
}

// mint signs claims with the broker's key and records the token as issued.
func (s *Server) mint(claims map[string]any) string {
	tok := signES256(s.key, claims)
	s.mu.Lock()
	s.issued = append(s.issued, tok)
	s.mu.Unlock()
	return tok
}

// ErrInvalidToken is returned by Verify for a token the broker did not issue
// for that target, or one that has expired.
var ErrInvalidToken = errors.New("invalid token")

// Verify checks that token was issued by this broker for target and has not
// expired at now.
func (s *Server) Verify(token, target string, now time.Time) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ErrInvalidToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return ErrInvalidToken
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&s.key.PublicKey, digest[:], r, ss) {
		return ErrInvalidToken
	}
	var c struct {
		Aud string `json:"aud"`
		Exp *int64 `json:"exp"`
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(payload, &c) != nil || c.Aud != target {
		return ErrInvalidToken
	}
	if c.Exp != nil && !now.Before(time.Unix(*c.Exp, 0)) {
		return fmt.Errorf("%w: expired", ErrInvalidToken)
	}
	return nil
}

// PodToken returns a ServiceAccount-style JWT for subject (for example
// system:serviceaccount:argocd:argocd-application-controller) that expires at
// exp, as the kubelet would project it. Its signature is real but no test
// checks it: the fake broker trusts the claims.
func PodToken(subject string, exp time.Time) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("brokertest: generate key: %v", err))
	}
	return signES256(key, map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local", "sub": subject,
		"aud": []string{"token-broker"}, "exp": exp.Unix(), "iat": time.Now().Unix(),
	})
}

func signES256(key *ecdsa.PrivateKey, claims map[string]any) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT"}`))
	body, _ := json.Marshal(claims)
	signing := header + "." + base64.RawURLEncoding.EncodeToString(body)
	digest := sha256.Sum256([]byte(signing))
	r, ss, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		panic(fmt.Sprintf("brokertest: sign: %v", err))
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func subjectOf(token string) string {
	return claimsOf(token).Sub
}

// jwtClaims are the claims the fake broker reads from a pod token, unverified.
type jwtClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Exp *int64 `json:"exp"`
}

// claimsOf decodes token's claims; zero for a token that is not a JWT.
func claimsOf(token string) jwtClaims {
	var c jwtClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return jwtClaims{}
	}
	return c
}

// expiredCert is a self-signed certificate for the addresses httptest serves
// on that expired an hour ago.
func expiredCert() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("brokertest: generate key: %v", err))
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "brokertest expired"},
		NotBefore:             now.Add(-48 * time.Hour),
		NotAfter:              now.Add(-time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"example.com"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(fmt.Sprintf("brokertest: create certificate: %v", err))
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writeCert writes srv's certificate as PEM to path.
func writeCert(srv *httptest.Server, path string) string {
	der := srv.Certificate().Raw
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		panic(fmt.Sprintf("brokertest: write CA: %v", err))
	}
	return path
}
