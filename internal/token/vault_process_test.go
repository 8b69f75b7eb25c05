package token

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// vaultRemote is the fake Vault, the API stub of one target that trusts its
// identity tokens, a pod token file, and the brokercred binary: brokercred
// with --protocol vault as client-go and kubectl run it.
type vaultRemote struct {
	bin    string
	vault  *brokertest.Server
	api    *brokertest.APIServer
	target string
	dir    string
	pod    string
}

func newVaultRemote(t *testing.T, bin string) *vaultRemote {
	t.Helper()
	r := &vaultRemote{bin: bin, target: "prod-east", dir: t.TempDir(),
		vault: brokertest.NewServer(brokertest.Options{Vault: brokertest.VaultOptions{LoginRole: "argocd", Namespace: "platform"}})}
	t.Cleanup(r.vault.Close)
	r.api = brokertest.NewAPIServer(r.vault, r.target)
	t.Cleanup(r.api.Close)
	r.pod = brokertest.PodToken(subject, time.Now().Add(time.Hour))
	writeFile(t, filepath.Join(r.dir, "token"), r.pod)
	return r
}

// flags are the token flags of an exec config for the remote: all of
// brokercred's settings, the Vault ones too, but --vault-login-role, which
// env sets.
func (r *vaultRemote) flags(cacheDir string) []string {
	return []string{"--protocol", "vault", "--broker-url", r.vault.VaultURL(), "--ca-file", r.vault.CAFile(r.dir),
		"--token-file", filepath.Join(r.dir, "token"), "--target", r.target, "--cache-dir", cacheDir,
		"--vault-auth-mount", "kubernetes", "--vault-namespace", "platform"}
}

// env is what an Argo CD execProviderConfig would set.
var vaultEnv = []string{"BROKERCRED_VAULT_LOGIN_ROLE=argocd"}

// secrets are every secret the remote's calls handled.
func (r *vaultRemote) secrets() []string {
	return slices.Concat([]string{r.pod}, r.vault.VaultTokens(), r.vault.Issued())
}

func (r *vaultRemote) assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range r.secrets() {
		if leak := brokertest.Leak(text, s); leak != "" {
			t.Errorf("%s holds %s", what, leak)
		}
	}
}

// assertVaultCalls checks the fake Vault saw n logins, n identity token
// requests and n revokes, each in the namespace, and has no live token.
func (r *vaultRemote) assertVaultCalls(t *testing.T, n int) {
	t.Helper()
	count := map[string]int{}
	for _, req := range r.vault.Requests() {
		count[req.Vault.Step]++
		if req.Vault.Namespace != "platform" || req.Subject != subject {
			t.Errorf("%s request: namespace %q, subject %q", req.Vault.Step, req.Vault.Namespace, req.Subject)
		}
	}
	if count["login"] != n || count["token"] != n || count["revoke"] != n {
		t.Errorf("Vault saw %v, want %d of each step", count, n)
	}
	if live := r.vault.LiveVaultTokens(); len(live) != 0 {
		t.Errorf("%d Vault tokens left live", len(live))
	}
}

// TestVaultProcesses drives the brokercred binary with --protocol vault as
// its users do: through client-go's exec authenticator in both
// ExecCredential versions, through every real kubectl on this machine, and
// by hand with -v, doctor and cache list, whose output must hold no secret.
func TestVaultProcesses(t *testing.T) {
	bin := testkit.BuildBrokercred(t, "../..")

	for _, apiVersion := range []string{"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"} {
		t.Run("client-go "+apiVersion, func(t *testing.T) {
			r := newVaultRemote(t, bin)
			cacheDir := t.TempDir()
			env := []clientcmdapi.ExecEnvVar{{Name: "BROKERCRED_VAULT_LOGIN_ROLE", Value: "argocd"}, {Name: "XDG_CACHE_HOME", Value: t.TempDir()}}
			cfg := &rest.Config{
				Host:            r.api.URL,
				TLSClientConfig: rest.TLSClientConfig{CAData: r.api.CAPEM()},
				ExecProvider: &clientcmdapi.ExecConfig{Command: bin, Args: r.flags(cacheDir), Env: env,
					APIVersion: apiVersion, InteractiveMode: clientcmdapi.NeverExecInteractiveMode},
			}
			for call := 1; call <= 2; call++ {
				got, err := testkit.ServerVersion(cfg)
				if err != nil {
					t.Fatalf("call %d: ServerVersion: %v", call, err)
				}
				if got != "v1.34.0-brokertest" {
					t.Errorf("call %d: server version %q", call, got)
				}
			}
			if a, rej := r.api.Accepted(), r.api.Rejected(); a != 2 || rej != 0 {
				t.Errorf("API stub accepted %d and rejected %d requests, want 2 and 0", a, rej)
			}
			r.assertVaultCalls(t, 1) // the second call is served from the cache
			if entries, _ := testkit.CacheEntries(cacheDir); len(entries) != 1 {
				t.Errorf("cache holds %d entries, want 1", len(entries))
			}
		})
	}

	t.Run("kubectl", func(t *testing.T) {
		kubectls := testkit.Kubectls()
		if len(kubectls) == 0 {
			t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
		}
		r := newVaultRemote(t, bin)
		for _, name := range testkit.SortedNames(kubectls) {
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				config := filepath.Join(dir, "kubeconfig")
				writeFile(t, config, testkit.Kubeconfig(t, r.bin, r.api.URL, r.api.CAFile(dir), r.flags(filepath.Join(dir, "cache"))...))
				before := len(r.vault.Requests())
				got := testkit.Run(t, testkit.Env(t, vaultEnv...), kubectls[name], "--kubeconfig", config, "get", "--raw", "/version")
				if got.Code != 0 || !strings.Contains(got.Stdout, "v1.34.0-brokertest") {
					t.Fatalf("%s get --raw /version exited %d, stdout %q\nstderr:\n%s", name, got.Code, got.Stdout, got.Stderr)
				}
				if n := len(r.vault.Requests()) - before; n != 3 {
					t.Errorf("Vault got %d requests, want 3 (login, token, revoke)", n)
				}
				r.assertNoSecret(t, name+" stderr", got.Stderr)
			})
		}
		r.assertVaultCalls(t, len(kubectls))
	})

	t.Run("no secret on stderr", func(t *testing.T) {
		r := newVaultRemote(t, bin)
		cacheDir := t.TempDir()
		env := testkit.Env(t, vaultEnv...)

		token := testkit.Run(t, env, bin, append([]string{"-v", "token"}, r.flags(cacheDir)...)...)
		if token.Code != 0 {
			t.Fatalf("token -v exited %d: %s", token.Code, token.Stderr)
		}
		r.assertNoSecret(t, "token -v stderr", token.Stderr)
		if !strings.Contains(token.Stderr, "vault token revoked") {
			t.Errorf("token -v does not say the Vault token was revoked:\n%s", token.Stderr)
		}

		doctor := testkit.Run(t, env, bin, append([]string{"doctor"}, r.flags(cacheDir)...)...)
		if doctor.Code != 0 {
			t.Fatalf("doctor exited %d:\n%s%s", doctor.Code, doctor.Stdout, doctor.Stderr)
		}
		for _, line := range []string{"✓ vault login   auth/kubernetes role \"argocd\"", "✓ vault token   identity role \"prod-east\": client_id \"prod-east\"", "✓ vault revoke  Vault token revoked", "✓ token request"} {
			if !strings.Contains(doctor.Stdout, line) {
				t.Errorf("doctor does not say %q:\n%s", line, doctor.Stdout)
			}
		}
		r.assertNoSecret(t, "doctor stdout", doctor.Stdout)
		r.assertNoSecret(t, "doctor stderr", doctor.Stderr)

		asJSON := testkit.Run(t, env, bin, append([]string{"doctor", "-o", "json"}, r.flags(cacheDir)...)...)
		var report Report
		if err := json.Unmarshal([]byte(asJSON.Stdout), &report); err != nil || !report.OK {
			t.Errorf("doctor -o json: %v, ok %v, exit %d", err, report.OK, asJSON.Code)
		}
		r.assertNoSecret(t, "doctor -o json stdout", asJSON.Stdout)
		r.assertNoSecret(t, "doctor -o json stderr", asJSON.Stderr)

		list := testkit.Run(t, env, bin, "cache", "list", "--cache-dir", cacheDir)
		if list.Code != 0 || !strings.Contains(list.Stdout, r.target) {
			t.Errorf("cache list exited %d:\n%s%s", list.Code, list.Stdout, list.Stderr)
		}
		r.assertNoSecret(t, "cache list", list.Stdout+list.Stderr)
		r.assertVaultCalls(t, 3) // token -v, doctor, doctor -o json

		refused := testkit.Run(t, testkit.Env(t, "BROKERCRED_VAULT_LOGIN_ROLE=someone-else"), bin, append([]string{"-v", "token", "--no-cache"}, r.flags(cacheDir)...)...)
		if refused.Code == 0 || !strings.Contains(refused.Stderr, `brokercred: error: vault login at `) {
			t.Errorf("a refused login exited %d:\n%s", refused.Code, refused.Stderr)
		}
		r.assertNoSecret(t, "refused token -v stderr", refused.Stderr)
	})
}
