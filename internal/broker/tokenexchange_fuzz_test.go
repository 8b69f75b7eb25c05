package broker

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// oauthErrRE is every error parseOAuthAnswer may give grant at host
// broker.test: fixed text and a field name of the answer's schema, never the
// body.
func oauthErrRE(grant string) *regexp.Regexp {
	return regexp.MustCompile(`^broker broker\.test answered the ` + regexp.QuoteMeta(grant) + ` (` +
		`with malformed JSON \((syntax error at byte \d+|field "[A-Za-z_.]*" has the wrong type|unreadable)\)` +
		`|without a usable access_token` +
		`); check --broker-url is the token endpoint$`)
}

// checkOAuthAnswer reads body as a token endpoint's 2xx answer to grant,
// sent at sent, and fails unless it is refused in one of errRE's fixed
// sentences or accepted as a printable token that expires after sending.
func checkOAuthAnswer(t *testing.T, body []byte, grant string, sent time.Time, errRE *regexp.Regexp) {
	t.Helper()
	tok, err := parseOAuthAnswer(body, "broker.test", grant, sent)
	if err != nil && !errRE.MatchString(err.Error()) {
		t.Fatalf("error is not one of the fixed sentences: %q", err)
	}
	if err == nil {
		if tok.Value == "" || !isTokenText([]byte(tok.Value)) {
			t.Fatal("accepted an empty or unprintable access_token")
		}
		if tok.ExpirySource == "expires_in" && !tok.Expiry.After(sent) {
			t.Fatal("expires_in gave an expiry at or before sending")
		}
	}
}

// FuzzTokenExchangeAnswer feeds arbitrary bodies to the token endpoint's
// answer and error parsers, as token-exchange and client-assertion read
// them: no panic, refusals in fixed sentences, an accepted token printable
// ASCII with an expiry counted from the sending time, and an error's fields
// never holding a piece of the pod token.
func FuzzTokenExchangeAnswer(f *testing.F) {
	f.Add([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":60}`), "pod-token-value")
	f.Add([]byte(`{"error":"invalid_grant","error_description":"bad pod-token-value"}`), "pod-token-value")
	sent := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	errRE := oauthErrRE("token exchange")
	f.Fuzz(func(t *testing.T, body []byte, pod string) {
		checkOAuthAnswer(t, body, "token exchange", sent, errRE)
		if e, ok := parseOAuthError(body, pod); ok {
			if !isTokenText([]byte(e.Code)) || len(e.Code) > 64 {
				t.Fatalf("accepted an error code of %d bytes that is not token text", len(e.Code))
			}
			if len(pod) >= 8 && (echoes(e.Code, pod) || echoes(e.Description, pod)) {
				t.Fatal("an OAuth error field holds a piece of the pod token")
			}
			if strings.ContainsAny(e.quoted(), "\n\r") {
				t.Fatal("the quoted error spans lines")
			}
		}
	})
}
