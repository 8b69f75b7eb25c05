package argocd

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/v3/util/rbac"

	"github.com/brokercred/brokercred/internal/testkit"
)

// BenchmarkArgoCDAPI measures the recipe's costs on this machine: the
// token exchange request alone, brokercred print-token exchanging the pod token at Argo CD's Dex (a new
// process, TLS to the /api/dex proxy, Dex verifying the pod token against
// the issuer's keys and signing its own), print-token served from the cache,
// and what argocd-server does with the token on each request (verify it,
// then check RBAC).
//
//	cd e2e/argocd && go test -run '^$' -bench ArgoCDAPI -benchtime 20x
func BenchmarkArgoCDAPI(b *testing.B) {
	bin := testkit.BuildBrokercred(b, filepath.Join("..", ".."))
	r := newRig(b, bin)
	pod := r.issuer.podToken(b, ciNamespace, deployer, r.projectedAudience(b))

	b.Run("exchange request alone", func(b *testing.B) {
		// The RFC 8693 request brokercred sends, from this process over one
		// kept-alive connection: Dex's share of an exchange.
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.pki.pool}}}
		form := url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"client_id":          {"argo-cd-cli"},
			"connector_id":       {"k8s-sa"},
			"scope":              {"openid federated:id"},
			"subject_token":      {pod},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
		}.Encode()
		for b.Loop() {
			resp, err := client.Post(r.argo.url+"/api/dex/token", "application/x-www-form-urlencoded", strings.NewReader(form))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("Dex answered %s", resp.Status)
			}
		}
	})
	b.Run("print-token exchange", func(b *testing.B) {
		for b.Loop() {
			if res := r.printToken(b, pod, b.TempDir()); res.Code != 0 {
				b.Fatalf("print-token: exit %d, stderr: %s", res.Code, r.redact(res.Stderr, pod))
			}
		}
	})
	b.Run("print-token cached", func(b *testing.B) {
		cacheDir := b.TempDir()
		before := r.argo.exchanges.Load()
		for b.Loop() {
			if res := r.printToken(b, pod, cacheDir); res.Code != 0 {
				b.Fatalf("print-token: exit %d, stderr: %s", res.Code, r.redact(res.Stderr, pod))
			}
		}
		if n := r.argo.exchanges.Load() - before; n != 1 {
			b.Fatalf("%d exchanges, want 1: the cache did not serve", n)
		}
	})
	b.Run("argocd-server verify and enforce", func(b *testing.B) {
		tok := r.exchange(b, pod)
		for b.Loop() {
			if err := r.argo.authorize(tok, rbac.ResourceApplications, rbac.ActionSync, "default/guestbook-dev"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
