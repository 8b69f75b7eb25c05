// Package argocd holds end-to-end tests of brokercred against Argo CD's own
// code (module github.com/argoproj/argo-cd/v3). It is its own Go module so
// the main module's go.mod stays small.
//
// The cluster Secret tests feed the Secrets brokercred generates through
// Argo CD's util/db and v1alpha1 types and reach a fake API server with the
// client config Argo CD builds from them.
//
// The API tests (argocdapi_test.go) run the recipe of docs/argocd-api.md: the
// argocd-cm and argocd-rbac-cm `brokercred config argocd-api` prints go
// through Argo CD's settings manager and Dex config generation, a real Dex
// (built by ../dex/build.sh) runs that config behind Argo CD's /api/dex
// proxy, brokercred exchanges pod tokens there, and Argo CD's session
// manager and RBAC enforcer judge the result.
//
// The module is on Argo CD v3.3.10, the last v3.3 release whose packages
// build from the module proxy: from v3.3.14 on, util/kube (which
// util/settings, and so util/session, util/dex and util/db, import) calls a
// gitops-engine method that exists only in the gitops-engine module nested
// in the argo-cd repository, which the proxy does not serve. Between v3.3.10
// and v3.3.19 the packages the API tests run differ only in what they do
// not exercise: login-attempt locking (util/session), escaping of "$" in
// connector configs (util/dex), settings locking and user-info caching.
package argocd
