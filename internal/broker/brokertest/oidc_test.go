package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDiscoveryVerifiesIssuedTokens follows OIDC discovery the way an API
// server does and checks an issued token's signature with the published key.
func TestDiscoveryVerifiesIssuedTokens(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	client := s.srv.Client()
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, client, s.Issuer()+DiscoveryPath, &disc)
	if disc.Issuer != s.Issuer() {
		t.Fatalf("discovery issuer %q, want %q", disc.Issuer, s.Issuer())
	}
	var set struct {
		Keys []struct{ Kty, Crv, Alg, X, Y string } `json:"keys"`
	}
	getJSON(t, client, disc.JWKSURI, &set)
	if len(set.Keys) != 1 || set.Keys[0].Kty != "EC" || set.Keys[0].Crv != "P-256" || set.Keys[0].Alg != "ES256" {
		t.Fatalf("key set = %+v, want one P-256 ES256 key", set.Keys)
	}
	token := s.Issue("dev", "someone", time.Now().Add(time.Minute))
	if !verifyES256(t, set.Keys[0].X, set.Keys[0].Y, token) {
		t.Error("the published key does not verify an issued token")
	}
	var claims struct{ Iss string }
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if json.Unmarshal(payload, &claims) != nil || claims.Iss != s.Issuer() {
		t.Errorf("iss = %q, want %q", claims.Iss, s.Issuer())
	}
}

func getJSON(t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func verifyES256(t *testing.T, x, y, token string) bool {
	t.Helper()
	xb, _ := base64.RawURLEncoding.DecodeString(x)
	yb, _ := base64.RawURLEncoding.DecodeString(y)
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
	if err != nil {
		t.Fatalf("parse published key: %v", err)
	}
	parts := strings.Split(token, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return len(sig) == 64 && ecdsa.Verify(key, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

// TestReview checks that Options.Review gates get-target-token: a failed
// review or one naming another subject is refused, a matching one served.
func TestReview(t *testing.T) {
	const sub = "system:serviceaccount:argocd:argocd-application-controller"
	for _, c := range []struct {
		name   string
		review func(string) (string, error)
		want   int
	}{
		{"passes", func(string) (string, error) { return sub, nil }, http.StatusOK},
		{"fails", func(string) (string, error) { return "", ErrNotAuthenticated }, http.StatusUnauthorized},
		{"other subject", func(string) (string, error) { return "system:anonymous", nil }, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewServer(Options{Review: c.review})
			defer s.Close()
			req, _ := http.NewRequest(http.MethodGet, s.URL+"?targetName=dev", nil)
			req.Header.Set("Authorization", "Bearer "+PodToken(sub, time.Now().Add(time.Hour)))
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}
