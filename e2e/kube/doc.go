// Package kube holds the end-to-end suite of brokercred between two real
// Kubernetes API servers: a control plane that issues the pod's
// ServiceAccount token (TokenRequest) and answers the broker's TokenReview,
// and a remote cluster that trusts the fake broker as a JWT issuer through
// --authentication-config and enforces RBAC on the broker's identity.
//
// It needs etcd on PATH (Debian: apt-get install etcd-server; ETCD names
// another) and kube-apiserver; the scenario runs once per version of
// kubeVersions, each built by TestMain with build.sh (KUBE_APISERVER names
// one prebuilt binary instead). A cold build takes longer than go test's
// default timeout lets the go command wait, so run
// `./build.sh kube-apiserver VERSION` for each first on a fresh machine;
// afterwards it returns at once. Without etcd the tests skip. The servers
// and their certificates come from package kubeworld, which e2e/vault
// shares. It is its own Go module so the main module's go.mod stays small.
package kube
