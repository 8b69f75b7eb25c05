package argocd

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// apiServerAudience is the audience of a pod's default automounted token:
// the API server's own.
const apiServerAudience = "https://kubernetes.default.svc.cluster.local"

// saIssuer is a Kubernetes ServiceAccount token issuer in miniature: the
// discovery document and JWKS kube-apiserver serves at
// /.well-known/openid-configuration and /openid/v1/jwks, and RS256 tokens
// shaped like the kubelet's projected ones.
type saIssuer struct {
	*httptest.Server
	key *rsa.PrivateKey
	kid string
}

func newSAIssuer(t testing.TB, p *pki) *saIssuer {
	t.Helper()
	key := newRSAKey(t)
	iss := &saIssuer{key: key, kid: keyID(&key.PublicKey)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{ // what kube-apiserver serves, field for field
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/openid/v1/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": iss.kid,
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	iss.Server = httptest.NewUnstartedServer(mux)
	iss.TLS = p.serverTLS(t)
	iss.StartTLS()
	t.Cleanup(iss.Close)
	return iss
}

// podToken is a projected token of ServiceAccount ns:name for audience aud,
// signed by this issuer.
func (iss *saIssuer) podToken(t testing.TB, ns, name, aud string) string {
	t.Helper()
	return iss.sign(t, podClaims(iss.URL, ns, name, aud, time.Now()))
}

// podClaims are the claims the kubelet asks for in a projected token.
func podClaims(issuer, ns, name, aud string, now time.Time) map[string]any {
	return map[string]any{
		"iss": issuer,
		"sub": "system:serviceaccount:" + ns + ":" + name,
		"aud": []string{aud},
		"exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"jti": "8f1e2d3c-" + ns + "-" + name,
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"node":           map[string]string{"name": "node-1", "uid": "4a5e3a1b-6d0c-4f5e-9b7a-1c2d3e4f5a6b"},
			"pod":            map[string]string{"name": "ci-job-0", "uid": "8f1e2d3c-4b5a-4968-8776-655443322110"},
			"serviceaccount": map[string]string{"name": name, "uid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
		},
	}
}

// sign makes a compact RS256 JWS of claims with this issuer's key.
func (iss *saIssuer) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return signRS256(t, iss.key, iss.kid, claims)
}

func signRS256(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"alg": "RS256", "kid": kid, "typ": "JWT"})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64(header) + "." + b64(payload)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyID is the RFC 7638 thumbprint of pub, as kube-apiserver derives its kid.
func keyID(pub *rsa.PublicKey) string {
	// Members in lexical order, no whitespace (RFC 7638 section 3).
	jwk := `{"e":"` + b64(big.NewInt(int64(pub.E)).Bytes()) + `","kty":"RSA","n":"` + b64(pub.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// claimsOf decodes a JWT's payload without verifying it, for a test that
// reads or rewrites what a token says.
func claimsOf(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload is not base64url: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("token payload is not JSON: %v", err)
	}
	return claims
}

// withClaims is jwt with its payload replaced by claims and its header and
// signature kept: what an attacker who edits a token gets.
func withClaims(t testing.TB, jwt string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + b64(payload) + "." + parts[2]
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
