package broker

import (
	"context"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// BenchmarkVaultFetch measures a cache miss against the fake Vault on
// loopback, over one kept-alive TLS connection as a process makes it: the
// whole protocol, and the same without its revoke, so that the difference
// is what revoking the Vault token costs a miss.
//
//	go test -run '^$' -bench BenchmarkVaultFetch -benchtime 2000x ./internal/broker/
func BenchmarkVaultFetch(b *testing.B) {
	fake := brokertest.NewServer(brokertest.Options{})
	defer fake.Close()
	c, err := New(Config{URL: fake.VaultURL(), CAFile: fake.CAFile(b.TempDir())})
	if err != nil {
		b.Fatal(err)
	}
	v := Vault{LoginRole: "argocd"}
	call := Call{Target: "dev", PodToken: brokertest.PodToken("system:serviceaccount:argocd:argocd-application-controller", time.Now().Add(time.Hour))}
	ctx := context.Background()
	b.Run("login+token+revoke", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.fetch(ctx, c, call); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("login+token", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.withoutRevoke(ctx, c, call); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("revoke alone", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			login, err := v.login(ctx, c, call, "kubernetes")
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := v.revokeSelf(ctx, c, login.Auth.ClientToken); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// withoutRevoke is Fetch without its last step.
func (v Vault) withoutRevoke(ctx context.Context, c *Client, call Call) (Token, error) {
	mount, role, err := v.names(call.Target)
	if err != nil {
		return Token{}, err
	}
	login, err := v.login(ctx, c, call, mount)
	if err != nil {
		return Token{}, err
	}
	return v.identityToken(ctx, c, call, role, login.Auth.ClientToken)
}
