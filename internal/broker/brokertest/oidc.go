package brokertest

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
)

// The paths of the broker's OpenID Connect discovery document and key set,
// the way a Kubernetes API server serves its ServiceAccount issuer's.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/openid/v1/jwks"
)

// Issuer is the iss claim of every token the broker mints,
// https://127.0.0.1:PORT: a real API server configured with this issuer URL
// and CAPEM finds the broker's signing key by OIDC discovery.
func (s *Server) Issuer() string { return s.srv.URL }

// CAPEM is the broker's certificate as PEM, for an AuthenticationConfiguration's
// certificateAuthority.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// serveOIDC answers the discovery document and the key set, and reports
// whether r asked for either.
func (s *Server) serveOIDC(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case DiscoveryPath:
		writeJSON(w, map[string]any{
			"issuer":                                s.Issuer(),
			"jwks_uri":                              s.Issuer() + JWKSPath,
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	case JWKSPath:
		writeJSON(w, map[string]any{"keys": []any{s.jwk()}})
	default:
		return false
	}
	return true
}

// jwk is the broker's public key as a JSON Web Key. Tokens carry no kid, so
// verifiers try every key in the set: there is only this one.
func (s *Server) jwk() map[string]string {
	point, err := s.key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		panic("brokertest: encode public key: " + err.Error())
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]string{
		"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
		"x": b64(point[1:33]), "y": b64(point[33:65]),
	}
}
