package broker

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func jwtWith(payload string) string {
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
}

func TestParseClaims(t *testing.T) {
	for _, tc := range []struct {
		name    string
		token   string
		want    Claims
		wantErr error
	}{
		{"full", jwtWith(`{"iss":"https://k8s","sub":"system:serviceaccount:argocd:x","aud":"broker","exp":1700000000}`),
			Claims{Issuer: "https://k8s", Subject: "system:serviceaccount:argocd:x", Audience: []string{"broker"}, Expiry: time.Unix(1700000000, 0)}, nil},
		{"audience list, float exp", jwtWith(`{"aud":["a","b"],"exp":1700000000.5}`), Claims{Audience: []string{"a", "b"}, Expiry: time.Unix(1700000000, 0)}, nil},
		{"no exp", jwtWith(`{"sub":"s"}`), Claims{Subject: "s"}, nil},
		{"Dex's federated claims", jwtWith(`{"sub":"CiRzeXN0ZW0","federated_claims":{"connector_id":"k8s-sa","user_id":"system:serviceaccount:ci:deployer"}}`),
			Claims{Subject: "CiRzeXN0ZW0", FederatedUserID: "system:serviceaccount:ci:deployer"}, nil},
		{"opaque", "sha256~opaque", Claims{}, ErrNotJWT},
		{"bad base64", "a.!!!.c", Claims{}, ErrNotJWT},
		{"payload not json", jwtWith(`nope`), Claims{}, ErrNotJWT},
		{"exp not a number", jwtWith(`{"exp":"soon"}`), Claims{}, ErrNotJWT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClaims(tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got.Issuer != tc.want.Issuer || got.Subject != tc.want.Subject || !got.Expiry.Equal(tc.want.Expiry) || len(got.Audience) != len(tc.want.Audience) || got.FederatedUserID != tc.want.FederatedUserID {
				t.Errorf("ParseClaims = %+v, want %+v", got, tc.want)
			}
		})
	}
}
