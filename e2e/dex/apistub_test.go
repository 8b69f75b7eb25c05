package dex

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// stubVersion is what the API stub reports for GET /version.
const stubVersion = "v1.34.0-dex-e2e"

// dexClaims are the claims of a Dex-issued token the tests look at.
type dexClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	AZP      string   `json:"azp"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	Name     string   `json:"name"`
}

// audience is the aud claim: one string or a list.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// verifier checks a token the way a kube-apiserver's OIDC authenticator
// would: RS256 signature by a key in Dex's JWKS (found through Dex's
// discovery), iss, aud and exp.
type verifier struct {
	issuer  string
	jwksURI string
	aud     string
	client  *http.Client
}

func newVerifier(t *testing.T, p *pki, issuer, aud string) *verifier {
	t.Helper()
	v := &verifier{issuer: issuer, aud: aud, client: &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS()}, Timeout: 10 * time.Second}}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.getJSON(issuer+"/.well-known/openid-configuration", &disc); err != nil {
		t.Fatalf("dex discovery: %v", err)
	}
	if disc.Issuer != issuer || disc.JWKSURI == "" {
		t.Fatalf("dex discovery names issuer %q and jwks_uri %q, want issuer %q and a jwks_uri", disc.Issuer, disc.JWKSURI, issuer)
	}
	v.jwksURI = disc.JWKSURI
	return v
}

func (v *verifier) getJSON(u string, into any) error {
	resp, err := v.client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// verify returns the token's claims if Dex signed it for v.aud. Its errors
// never quote the token.
func (v *verifier) verify(token string) (dexClaims, error) {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return dexClaims{}, fmt.Errorf("not an RS256 JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return dexClaims{}, fmt.Errorf("%d signatures, want 1", len(jws.Signatures))
	}
	// Fetched per request, as an authenticator refetches on an unknown kid.
	var jwks jose.JSONWebKeySet
	if err := v.getJSON(v.jwksURI, &jwks); err != nil {
		return dexClaims{}, fmt.Errorf("dex JWKS: %v", err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := jwks.Key(kid)
	if len(keys) == 0 {
		return dexClaims{}, fmt.Errorf("no key %q in dex's JWKS", kid)
	}
	payload, err := jws.Verify(keys[0].Public())
	if err != nil {
		return dexClaims{}, fmt.Errorf("signature: %v", err)
	}
	var c dexClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return dexClaims{}, fmt.Errorf("claims: %v", err)
	}
	switch {
	case c.Issuer != v.issuer:
		return c, fmt.Errorf("iss %q, want %q", c.Issuer, v.issuer)
	case !slices.Contains(c.Audience, v.aud):
		return c, fmt.Errorf("aud %q does not hold %q", c.Audience, v.aud)
	case time.Now().After(time.Unix(c.Expiry, 0)):
		return c, errors.New("expired")
	}
	return c, nil
}

// apiStub is a TLS API server that accepts only tokens its verifier
// accepts and answers GET /version.
type apiStub struct {
	*httptest.Server
	v                  *verifier
	accepted, rejected atomic.Int64
	mu                 sync.Mutex
	lastClaims         dexClaims
	lastTokenSum       [sha256.Size]byte
	lastErr            error
}

func newAPIStub(t *testing.T, p *pki, v *verifier) *apiStub {
	t.Helper()
	s := &apiStub{v: v}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.TLS = p.serverTLS()
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *apiStub) serve(w http.ResponseWriter, r *http.Request) {
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	claims, err := s.v.verify(token)
	if !found || err != nil {
		if !found {
			err = errors.New("no bearer token")
		}
		s.rejected.Add(1)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`))
		return
	}
	s.accepted.Add(1)
	s.mu.Lock()
	s.lastClaims, s.lastTokenSum = claims, sha256.Sum256([]byte(token))
	s.mu.Unlock()
	if r.URL.Path != "/version" {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, map[string]string{"major": "1", "minor": "34", "gitVersion": stubVersion, "platform": "linux/amd64"})
}

// last is what the stub saw on the last accepted request, and why it last
// rejected one.
func (s *apiStub) last() (dexClaims, [sha256.Size]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastClaims, s.lastTokenSum, s.lastErr
}
