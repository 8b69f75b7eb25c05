// Package dex holds an end-to-end test of brokercred's RFC 8693 token
// exchange against a real Dex: module github.com/dexidp/dex at the version
// go.mod's tool directive pins, built by TestMain with build.sh, which keeps
// one binary per version for this module and e2e/argocd. It is its own Go
// module so Dex's dependencies stay out of the main module's go.mod.
//
// The test starts a Kubernetes-shaped ServiceAccount token issuer (discovery
// and JWKS on loopback TLS), Dex with the memory storage, static clients and
// an oidc connector trusting that issuer, and an API stub that accepts only
// tokens Dex signed (checked through Dex's JWKS). client-go reaches the stub
// with brokercred as its exec plugin.
package dex
