// Package kubeworld runs real Kubernetes control planes for end-to-end
// tests: a single-member etcd and kube-apiservers on free loopback ports,
// each with its own serving certificate and ServiceAccount signing key from
// a throwaway certificate authority, and an admin client for each. Every
// process runs in its own process group and stops when the test ends.
//
// e2e/kube and e2e/vault share it; the binaries come from Debian's
// etcd-server and from e2e/kube/build.sh (see Etcd and BuildKubeAPIServer).
package kubeworld
