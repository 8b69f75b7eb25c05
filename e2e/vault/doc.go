// Package vault holds the end-to-end test of brokercred's --protocol vault
// against a real HashiCorp Vault: it runs the recipe of docs/vault.md, shell
// blocks and all, against `vault server -dev -dev-tls` and a real
// kube-apiserver that issues the pod tokens, answers Vault's TokenReview and
// OIDC discovery, and trusts Vault's identity tokens; then kubectl reaches
// that API server through brokercred, and Vault's audit log says what each
// run cost.
//
// It needs the vault binary (BROKERCRED_E2E_VAULT, else what build.sh
// builds: about 18 minutes, once), etcd (Debian: apt-get install
// etcd-server; ETCD names another), kubectl, and kube-apiserver, which
// TestMain builds with ../kube/build.sh when missing (KUBE_APISERVER names a
// prebuilt one). Without Vault the test skips with one line saying how to
// get it. It is its own Go module so the main module's go.mod stays small.
package vault
