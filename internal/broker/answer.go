package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// answer covers the two JSON shapes brokers give: {"token", "expirationTimestamp"}
// and a whole ExecCredential, whose fields sit under "status".
type answer struct {
	Kind                string     `json:"kind"`
	Token               string     `json:"token"`
	ExpirationTimestamp *time.Time `json:"expirationTimestamp"`
	Status              *struct {
		Token               string     `json:"token"`
		ExpirationTimestamp *time.Time `json:"expirationTimestamp"`
	} `json:"status"`
}

// parseAnswer reads a 2xx broker answer: a raw token as text, JSON with a
// token, or an ExecCredential. Errors describe the body, never quote it.
func parseAnswer(body []byte, contentType, host string) (Token, error) {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return Token{}, fmt.Errorf("broker %s answered with an empty body; check the broker's logs for this target", host)
	case body[0] == '<' || strings.HasPrefix(contentType, "text/html"):
		return Token{}, fmt.Errorf("broker %s answered with an HTML page, not a token; check --broker-url points at the token API, not a login page", host)
	case body[0] == '{':
		return parseJSONAnswer(body, host)
	}
	if !isTokenText(body) {
		return Token{}, fmt.Errorf("broker %s answered with text that is not a token; check --broker-url and --protocol", host)
	}
	return withJWTExpiry(Token{Value: string(body)}), nil
}

func parseJSONAnswer(body []byte, host string) (Token, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Token{}, fmt.Errorf("broker %s answered with malformed JSON (%s); check --protocol matches the broker", host, jsonProblem(err))
	}
	t := Token{Value: a.Token}
	exp := a.ExpirationTimestamp
	if a.Status != nil && (a.Kind == "ExecCredential" || t.Value == "") {
		t.Value, exp = a.Status.Token, a.Status.ExpirationTimestamp
	}
	if t.Value == "" {
		return Token{}, fmt.Errorf("broker %s answered with JSON that holds no token; check --protocol matches the broker", host)
	}
	if exp != nil && !exp.IsZero() {
		t.Expiry, t.ExpirySource = *exp, "answer"
		return t, nil
	}
	return withJWTExpiry(t), nil
}

// jsonProblem names what is wrong with JSON without quoting any of it.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	}
	return "unreadable"
}

// withJWTExpiry fills Expiry from the token's own exp claim when it is a JWT.
func withJWTExpiry(t Token) Token {
	if c, err := ParseClaims(t.Value); err == nil && !c.Expiry.IsZero() {
		t.Expiry, t.ExpirySource = c.Expiry, "jwt"
	}
	return t
}

// isTokenText reports whether b looks like one bearer token: printable
// ASCII, no spaces.
func isTokenText(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// statusError explains a non-2xx broker answer by its status alone.
func statusError(resp *http.Response, host, target, subjectToken string) error {
	code := resp.StatusCode
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("broker refused the identity %s for target %s (HTTP %d); check the broker's allow rule for this ServiceAccount and that the pod token's audience is one the broker accepts",
			describeSubject(subjectToken), target, code)
	case code == http.StatusNotFound:
		return fmt.Errorf("broker %s has no such endpoint (HTTP 404); check --broker-url (OpenUnison: https://HOST/api/get-target-token)", host)
	case code >= 300 && code < 400:
		return fmt.Errorf("broker %s redirected (HTTP %d) to %s; set --broker-url to the final https URL", host, code, redirectHost(resp))
	case code == http.StatusTooManyRequests:
		return fmt.Errorf("broker %s is rate limiting (HTTP 429) and did not recover within --timeout; retry later or raise --timeout", host)
	case code >= 500:
		return fmt.Errorf("broker %s failed (HTTP %d) after retries; check the broker's health and logs", host, code)
	}
	return fmt.Errorf("broker %s answered HTTP %d for target %s; check --broker-url, --target and the broker's logs", host, code, target)
}

// describeSubject names the pod identity for an error: its sub claim, which
// is a ServiceAccount name and not a secret.
func describeSubject(subjectToken string) string {
	c, err := ParseClaims(subjectToken)
	if err != nil || c.Subject == "" {
		return "the pod token's identity"
	}
	return c.Subject
}

func redirectHost(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return "an unknown location"
	}
	return loc.Scheme + "://" + loc.Host
}
