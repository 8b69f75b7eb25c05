package broker

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// vaultErrRE is every error Vault's answer parsers may give for host
// vault.test: fixed text and a field name of the answer's schema, never the
// body.
var vaultErrRE = regexp.MustCompile(`^vault at vault\.test answered the (` +
	`login with malformed JSON \((syntax error at byte \d+|field "[A-Za-z_.]*" has the wrong type|unreadable)\); check --broker-url is Vault's address` +
	`|login without a usable client_token; check --vault-auth-mount is a kubernetes or jwt auth method` +
	`|identity token request with malformed JSON \((syntax error at byte \d+|field "[A-Za-z_.]*" has the wrong type|unreadable)\); check --broker-url is Vault's address` +
	`|identity token request without a usable token; check --broker-url is Vault's address` +
	`)$`)

// FuzzVaultAnswer feeds arbitrary bodies to the three readers of Vault's
// answers: the login, the identity token and the error answer. No panic;
// refusals in fixed sentences; an accepted Vault token or identity token is
// printable ASCII, an expiry comes after sending; and an error message is
// one line of at most 200 characters that never holds a piece of the pod
// token or the Vault token.
func FuzzVaultAnswer(f *testing.F) {
	f.Add([]byte(`{"auth":{"client_token":"hvs.CAESIJ","lease_duration":2764800,"renewable":true}}`), "pod-token-value", "hvs.CAESIJ-vault")
	f.Add([]byte(`{"data":{"token":"eyJ.eyJ.sig","client_id":"dev","ttl":60}}`), "pod-token-value", "hvs.CAESIJ-vault")
	f.Add([]byte(`{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`), "pod-token-value", "hvs.CAESIJ-vault")
	f.Add([]byte(`{"errors":["invalid jwt pod-token-value"]}`), "pod-token-value", "hvs.CAESIJ-vault")
	f.Add([]byte(`{"data":{"token":"t","ttl":9223372036854775807}}`), "", "")
	sent := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, pod, vaultToken string) {
		login, err := parseVaultLogin(body, "vault.test")
		if err != nil && !vaultErrRE.MatchString(err.Error()) {
			t.Fatalf("login error is not one of the fixed sentences: %q", err)
		}
		if err == nil && (login.Auth.ClientToken == "" || !isTokenText([]byte(login.Auth.ClientToken))) {
			t.Fatal("accepted an empty or unprintable client_token")
		}
		_ = describeLease(login.Auth.LeaseDuration)

		tok, _, err := parseVaultIdentityToken(body, "vault.test", sent)
		if err != nil && !vaultErrRE.MatchString(err.Error()) {
			t.Fatalf("identity token error is not one of the fixed sentences: %q", err)
		}
		if err == nil {
			if tok.Value == "" || !isTokenText([]byte(tok.Value)) {
				t.Fatal("accepted an empty or unprintable identity token")
			}
			if tok.ExpirySource == "ttl" && !tok.Expiry.After(sent) {
				t.Fatalf("ttl gave an expiry %v at or before sending", tok.Expiry)
			}
		}

		msg := vaultMessage(body, pod, vaultToken)
		if strings.ContainsAny(msg, "\n\r\t") || utf8.RuneCountInString(msg) > 201 {
			t.Fatalf("message of %d characters spans lines or is too long", utf8.RuneCountInString(msg))
		}
		for _, secret := range []string{pod, vaultToken} {
			if len(secret) >= 8 && echoes(msg, secret) {
				t.Fatal("the error message holds a piece of a secret")
			}
		}
		if said := vaultSaid(400, msg); strings.ContainsAny(said, "\n\r") {
			t.Fatal("the quoted message spans lines")
		}
	})
}
