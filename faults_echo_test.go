//go:build unix

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// echoFaults are brokers that answer with a secret the call sent them
// instead of a token (issue 24 N1): it must never be printed, cached or
// sent on to the remote cluster.
func echoFaults() []faultCase {
	const clientSecret = "CLIENT-SECRET-SENTINEL-0123456789abcdef"
	const vaultToken = "hvs.VAULT-TOKEN-SENTINEL-0123456789abcdef"
	return []faultCase{
		{
			name: "token endpoint answers with the client secret",
			setup: func(t *testing.T, f *fixture) {
				secretFile := filepath.Join(f.Dir, "client-secret")
				if err := os.WriteFile(secretFile, []byte(clientSecret), 0o600); err != nil {
					t.Fatal(err)
				}
				f.planted = append(f.planted, clientSecret)
				f.brokerURL = f.Broker.ExchangeURL()
				f.extra = append(f.extra, "--protocol", "token-exchange", "--client-id", "argocd", "--client-secret-file", secretFile)
				f.Broker.Queue(brokertest.Response{
					Header: map[string]string{"Content-Type": "application/json"},
					Body:   `{"access_token":"` + clientSecret + `","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":60}`,
				})
				f.heal = append(f.heal, func() { f.brokerURL = f.Broker.URL })
			},
			wantExit:     1,
			wantStderr:   "sent back a secret of this call (the client secret or the broker's session token)",
			wantRequests: 1,
		},
		{
			name: "Vault answers the identity token step with its own X-Vault-Token",
			setup: func(t *testing.T, f *fixture) {
				f.planted = append(f.planted, vaultToken)
				f.brokerURL = f.Broker.VaultURL()
				f.extra = append(f.extra, "--protocol", "vault", "--vault-login-role", "argocd")
				f.Broker.Queue(
					brokertest.Response{Body: `{"auth":{"client_token":"` + vaultToken + `","lease_duration":3600}}`},
					brokertest.Response{Body: `{"data":{"token":"` + vaultToken + `","client_id":"prod-east","ttl":60}}`},
				)
				f.heal = append(f.heal, func() { f.brokerURL = f.Broker.URL })
			},
			wantExit:     1,
			wantStderr:   "sent back a secret of this call (the client secret or the broker's session token)",
			wantRequests: 3, // login, token, revoke
		},
	}
}

// readLimitFaults are entries cached under one caller's limits and read by
// a caller with tighter ones (issue 24 N5): the reader's --max-ttl and
// --default-ttl hold on every read.
func readLimitFaults() []faultCase {
	return []faultCase{
		{
			name: "an entry cached under the default 24h --max-ttl, read with --max-ttl 5m",
			opts: brokertest.Options{NoExp: true},
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Time{})
				f.Broker.Queue(jsonAnswer(tok, time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339)))
				f.prime(t)
			},
			args:         []string{"--max-ttl", "5m"},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, start, end time.Time, cred execCredential) {
				if got := cred.Status.ExpirationTimestamp; got.After(end.Add(5 * time.Minute)) {
					t.Errorf("expirationTimestamp is %v after the call, want at most 5m (--max-ttl)", got.Sub(end).Round(time.Second))
				}
			},
		},
		{
			name: "an entry of unstated expiry cached under --default-ttl 10m, read with --default-ttl 30s",
			opts: brokertest.Options{NoExp: true},
			setup: func(t *testing.T, f *fixture) {
				f.extra = append(f.extra, "--default-ttl", "10m")
				f.prime(t)
				f.extra = f.extra[:len(f.extra)-2]
			},
			args:         []string{"--default-ttl", "30s"},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, start, end time.Time, cred execCredential) {
				if got := cred.Status.ExpirationTimestamp; got.After(end.Add(30 * time.Second)) {
					t.Errorf("expirationTimestamp is %v after the call, want at most 30s (--default-ttl)", got.Sub(end).Round(time.Second))
				}
			},
		},
	}
}
