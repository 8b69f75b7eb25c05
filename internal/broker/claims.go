package broker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claims are the few JWT claims brokercred reads from a token. Nothing is
// verified: the broker and the remote API server verify signatures.
type Claims struct {
	Issuer   string    // "iss"; empty when absent
	Subject  string    // "sub"; empty when absent
	Audience []string  // "aud", as a list even when the token has a single string
	Expiry   time.Time // "exp"; zero when absent
	// FederatedUserID is Dex's "federated_claims.user_id", the upstream
	// subject it vouches for (asked for with the federated:id scope, and
	// what Argo CD's RBAC then names); empty when absent.
	FederatedUserID string
}

// ErrNotJWT is returned by ParseClaims for a token that is not a JWT.
var ErrNotJWT = errors.New("not a JWT")

// ParseClaims decodes the payload of a JWT without verifying it. It returns
// ErrNotJWT when token does not have three dot-separated parts with a JSON
// payload. Errors never quote the token.
func ParseClaims(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, ErrNotJWT
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, ErrNotJWT
	}
	var raw struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp *json.Number    `json:"exp"`
		Fed struct {
			UserID string `json:"user_id"`
		} `json:"federated_claims"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Claims{}, ErrNotJWT
	}
	c := Claims{Issuer: raw.Iss, Subject: raw.Sub, Audience: parseAudience(raw.Aud), FederatedUserID: raw.Fed.UserID}
	if raw.Exp != nil {
		exp, err := raw.Exp.Float64()
		if err != nil {
			return Claims{}, fmt.Errorf("%w: exp is not a number", ErrNotJWT)
		}
		c.Expiry = time.Unix(int64(exp), 0)
	}
	return c, nil
}

// parseAudience accepts "aud" as a string or a list of strings.
func parseAudience(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}
