package dex

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// saIssuer is a Kubernetes ServiceAccount token issuer in miniature: the
// discovery document and JWKS a kube-apiserver serves at
// /.well-known/openid-configuration and /openid/v1/jwks, and RS256 projected
// tokens shaped like the kubelet's.
type saIssuer struct {
	*httptest.Server
	key *rsa.PrivateKey
	kid string
}

func newSAIssuer(t *testing.T, p *pki) *saIssuer {
	t.Helper()
	iss := &saIssuer{key: newRSAKey(t)}
	iss.kid = keyID(t, &iss.key.PublicKey)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		// What kube-apiserver serves, field for field.
		writeJSON(w, map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/openid/v1/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &iss.key.PublicKey, KeyID: iss.kid, Algorithm: "RS256", Use: "sig"}}})
	})
	iss.Server = httptest.NewUnstartedServer(mux)
	iss.TLS = p.serverTLS()
	iss.StartTLS()
	t.Cleanup(iss.Close)
	return iss
}

// podToken is a projected ServiceAccount token for subject with audience
// aud, signed with this issuer's key.
func (iss *saIssuer) podToken(t *testing.T, subject, aud string, ttl time.Duration) string {
	t.Helper()
	return signPodToken(t, iss.URL, iss.key, iss.kid, subject, aud, ttl)
}

// signPodToken signs the claims the kubelet asks for in a projected token:
// iss, sub, aud, exp, iat, nbf, jti and the kubernetes.io bindings.
func signPodToken(t *testing.T, issuer string, key *rsa.PrivateKey, kid, subject, aud string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": issuer,
		"sub": subject,
		"aud": []string{aud},
		"exp": now.Add(ttl).Unix(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"jti": randomID(t),
		"kubernetes.io": map[string]any{
			"namespace":      "argocd",
			"node":           map[string]string{"name": "node-1", "uid": "4a5e3a1b-6d0c-4f5e-9b7a-1c2d3e4f5a6b"},
			"pod":            map[string]string{"name": "argocd-application-controller-0", "uid": "8f1e2d3c-4b5a-4968-8776-655443322110"},
			"serviceaccount": map[string]string{"name": "argocd-application-controller", "uid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
		},
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyID is the RFC 7638 thumbprint of pub, as kube-apiserver derives its kid.
func keyID(t *testing.T, pub *rsa.PublicKey) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func randomID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
