package broker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzParseClaims feeds arbitrary tokens to the JWT claim reader: it must
// not panic, must fail only with ErrNotJWT in one of two fixed sentences
// (never quoting the token), must accept only three dot-separated parts, and
// must read an integral exp exactly.
func FuzzParseClaims(f *testing.F) {
	f.Add(jwtWith(`{"iss":"https://k8s","sub":"system:serviceaccount:argocd:x","aud":["broker"],"exp":1893456000}`))
	f.Add("sha256~opaque")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := ParseClaims(token)
		if err != nil {
			if !errors.Is(err, ErrNotJWT) || (err.Error() != "not a JWT" && err.Error() != "not a JWT: exp is not a number") {
				t.Fatalf("error %q is not ErrNotJWT in a fixed sentence", err)
			}
			return
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d parts", len(parts))
		}
		payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
		if err != nil {
			t.Fatalf("accepted a payload that is not base64url: %v", err)
		}
		var raw struct {
			Exp json.RawMessage `json:"exp"`
		}
		if json.Unmarshal(payload, &raw) != nil {
			t.Fatal("accepted a payload that is not a JSON object")
		}
		var exp int64
		if json.Unmarshal(raw.Exp, &exp) == nil && exp > -1e11 && exp < 1e11 && c.Expiry.Unix() != exp {
			t.Fatalf("exp %d read as %d", exp, c.Expiry.Unix())
		}
	})
}
