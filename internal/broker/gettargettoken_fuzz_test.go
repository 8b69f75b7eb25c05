package broker

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// answerErrRE is every error parseAnswer may give for host broker.test:
// fixed text, a byte offset and a field name of the answer's schema, never
// anything else from the body.
var answerErrRE = regexp.MustCompile(`^broker broker\.test answered with (` +
	`an empty body; check the broker's logs for this target` +
	`|an HTML page, not a token; check --broker-url points at the token API, not a login page` +
	`|text that is not a token; check --broker-url and --protocol` +
	`|malformed JSON \((syntax error at byte \d+|field "[A-Za-z.]*" has the wrong type|unreadable)\); check --protocol matches the broker` +
	`|JSON that holds no token; check --protocol matches the broker` +
	`)$`)

// FuzzGetTargetTokenAnswer feeds arbitrary 2xx bodies and content types to the broker
// answer parser: it must not panic, must explain a refusal in one of its
// fixed sentences (so it never quotes a body, which may hold a token), and
// must only accept a non-empty token whose expiry agrees with its source.
func FuzzGetTargetTokenAnswer(f *testing.F) {
	f.Add([]byte(jwtWith(`{"sub":"s","exp":1893456000}`)), "text/plain")
	f.Add([]byte(`{"token":"t","expirationTimestamp":"2030-01-01T00:00:00Z"}`), "application/json")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		tok, err := parseAnswer(body, contentType, "broker.test")
		if err != nil {
			if !answerErrRE.MatchString(err.Error()) {
				t.Fatalf("error is not one of the fixed sentences: %q", err)
			}
			return
		}
		if tok.Value == "" {
			t.Fatal("accepted an answer with an empty token")
		}
		switch tok.ExpirySource {
		case "answer":
			if tok.Expiry.IsZero() {
				t.Fatalf("expiry from %s is zero", tok.ExpirySource)
			}
		case "":
			if !tok.Expiry.IsZero() {
				t.Fatal("expiry without a source")
			}
		default:
			t.Fatalf("unknown expiry source %q", tok.ExpirySource)
		}
		trimmed := bytes.TrimSpace(body)
		if trimmed[0] != '{' {
			if tok.Value != string(trimmed) {
				t.Fatal("a text answer's token is not the trimmed body")
			}
			if strings.ContainsFunc(tok.Value, func(r rune) bool { return r <= ' ' || r > '~' }) {
				t.Fatal("a text token holds a space, a control or a non-ASCII character")
			}
		}
	})
}
