//go:build unix

package main

import (
	"os"
	"path/filepath"
	"testing"

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
