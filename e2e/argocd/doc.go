// Package argocd holds end-to-end tests that feed the cluster Secrets
// brokercred generates through Argo CD's own Go types (module
// github.com/argoproj/argo-cd/v3) and reach a fake API server with the
// client config Argo CD builds from them. It is its own Go module so the
// main module's go.mod stays small.
package argocd
