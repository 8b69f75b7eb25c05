package token_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

const (
	podSubject = "system:serviceaccount:argocd:argocd-application-controller"
	target     = "prod-east"
	clientID   = "00000000-0000-0000-0000-0000000a4905" // an Entra application's client id
	apiVersion = "v1.34.0-brokertest"                   // what the API stub reports
)

// assertionRemote is the fake broker's client-assertion endpoint, an API
// server that trusts its tokens for api://prod-east, a pod token and the
// brokercred binary: what a pod in the control-plane cluster sees.
type assertionRemote struct {
	bin       string
	broker    *brokertest.Server
	api       *brokertest.APIServer
	dir       string
	tokenFile string
	pod       string
}

func newAssertionRemote(t *testing.T, bin string, opts brokertest.Options) *assertionRemote {
	t.Helper()
	r := &assertionRemote{bin: bin, broker: brokertest.NewServer(opts), dir: t.TempDir()}
	t.Cleanup(r.broker.Close)
	r.api = brokertest.NewAPIServer(r.broker, "api://"+target)
	t.Cleanup(r.api.Close)
	r.pod = brokertest.PodToken(podSubject, time.Now().Add(time.Hour))
	r.tokenFile = filepath.Join(r.dir, "token")
	if err := os.WriteFile(r.tokenFile, []byte(r.pod), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// flags are the token flags of a cluster's exec config, caching in cacheDir.
func (r *assertionRemote) flags(cacheDir string) []string {
	return []string{
		"--protocol", "client-assertion",
		"--broker-url", r.broker.ClientAssertionURL(),
		"--ca-file", r.broker.CAFile(r.dir),
		"--token-file", r.tokenFile,
		"--target", target,
		"--client-id", clientID,
		"--scope", "api://{target}/.default",
		"--cache-dir", cacheDir,
	}
}

// assertNoSecret fails when text holds the pod token or any token the
// broker issued, whole or in part, without printing either.
func (r *assertionRemote) assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, secret := range append([]string{r.pod}, r.broker.Issued()...) {
		if leak := brokertest.Leak(text, secret); leak != "" {
			t.Errorf("%s holds %s", what, leak)
		}
	}
}

// assertRequests checks the broker got n client-assertion requests, each
// from the pod's subject for the target's scope.
func (r *assertionRemote) assertRequests(t *testing.T, n int) {
	t.Helper()
	reqs := r.broker.Requests()
	if len(reqs) != n {
		t.Fatalf("broker got %d requests, want %d", len(reqs), n)
	}
	for _, req := range reqs {
		f := req.Form
		if req.Subject != podSubject || f.Get("client_id") != clientID || f.Get("scope") != "api://"+target+"/.default" || f.Get("grant_type") != "client_credentials" {
			t.Errorf("request = subject %q, form %v; want %s asking for api://%s/.default as %s", req.Subject, f, podSubject, target, clientID)
		}
	}
}

// TestClientAssertionProcesses runs the brokercred binary with --protocol
// client-assertion the ways it is run: by real client-go's exec
// authenticator (v1 and v1beta1), by real kubectl binaries, and by hand with
// -v, doctor and cache list; none of them may print a secret.
func TestClientAssertionProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds brokercred and runs processes")
	}
	bin := testkit.BuildBrokercred(t, "../..")

	t.Run("client-go", func(t *testing.T) {
		for _, tc := range []struct {
			apiVersion         string
			provideClusterInfo bool
		}{
			{"client.authentication.k8s.io/v1", true},
			{"client.authentication.k8s.io/v1beta1", false},
		} {
			t.Run(tc.apiVersion, func(t *testing.T) {
				r := newAssertionRemote(t, bin, brokertest.Options{ClientID: clientID, TTL: time.Hour})
				cacheDir := t.TempDir()
				cfg := &rest.Config{
					Host:            r.api.URL,
					TLSClientConfig: rest.TLSClientConfig{CAData: r.api.CAPEM()},
					ExecProvider: &clientcmdapi.ExecConfig{
						Command: bin, Args: r.flags(cacheDir), APIVersion: tc.apiVersion,
						InteractiveMode: clientcmdapi.NeverExecInteractiveMode, ProvideClusterInfo: tc.provideClusterInfo,
						Env: []clientcmdapi.ExecEnvVar{{Name: "XDG_CACHE_HOME", Value: t.TempDir()}},
					},
				}
				for call := 1; call <= 2; call++ {
					got, err := testkit.ServerVersion(cfg)
					if err != nil {
						t.Fatalf("call %d: ServerVersion: %v", call, err)
					}
					if got != apiVersion {
						t.Errorf("call %d: server version %q, want %q", call, got, apiVersion)
					}
				}
				if r.api.Accepted() != 2 || r.api.Rejected() != 0 {
					t.Errorf("API server accepted %d and rejected %d requests, want 2 and 0", r.api.Accepted(), r.api.Rejected())
				}
				r.assertRequests(t, 1)
				if entries, _ := testkit.CacheEntries(cacheDir); len(entries) != 1 {
					t.Errorf("cache holds %d entries, want 1", len(entries))
				}
			})
		}
	})

	t.Run("kubectl", func(t *testing.T) {
		kubectls := testkit.Kubectls()
		if len(kubectls) == 0 {
			t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
		}
		r := newAssertionRemote(t, bin, brokertest.Options{ClientID: clientID, TTL: time.Hour})
		for _, name := range testkit.SortedNames(kubectls) {
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				config := filepath.Join(dir, "kubeconfig")
				kubeconfig := testkit.Kubeconfig(t, bin, r.api.URL, r.api.CAFile(dir), r.flags(filepath.Join(dir, "cache"))...)
				if err := os.WriteFile(config, []byte(kubeconfig), 0o600); err != nil {
					t.Fatal(err)
				}
				before := len(r.broker.Requests())
				for run := 1; run <= 2; run++ { // the second from the disk cache
					out := testkit.Run(t, testkit.Env(t), kubectls[name], "--kubeconfig", config, "get", "--raw", "/version")
					if out.Code != 0 || !strings.Contains(out.Stdout, apiVersion) {
						t.Fatalf("run %d: %s get --raw /version exited %d, stdout %q, stderr:\n%s", run, name, out.Code, out.Stdout, out.Stderr)
					}
					r.assertNoSecret(t, name+" stderr", out.Stderr)
				}
				if n := len(r.broker.Requests()) - before; n != 1 {
					t.Errorf("broker got %d new requests, want 1 (an empty cache, then the cache)", n)
				}
			})
		}
		r.assertRequests(t, len(kubectls))
	})

	t.Run("by hand: -v, doctor, cache list", func(t *testing.T) {
		r := newAssertionRemote(t, bin, brokertest.Options{ClientID: clientID, TTL: 24 * time.Hour})
		cacheDir := t.TempDir()
		env := testkit.Env(t)

		tok := testkit.Run(t, env, bin, append([]string{"-v", "token"}, r.flags(cacheDir)...)...)
		if tok.Code != 0 {
			t.Fatalf("token -v exited %d; stderr:\n%s", tok.Code, tok.Stderr)
		}
		var cred struct {
			Status struct {
				Token               string    `json:"token"`
				ExpirationTimestamp time.Time `json:"expirationTimestamp"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(tok.Stdout), &cred); err != nil {
			t.Fatalf("stdout is not an ExecCredential: %v", err)
		}
		if err := r.broker.Verify(cred.Status.Token, "api://"+target, time.Now()); err != nil {
			t.Errorf("credential's token does not verify for api://%s: %v", target, err)
		}
		if left := time.Until(cred.Status.ExpirationTimestamp); left < 24*time.Hour-15*time.Second || left > 24*time.Hour-10*time.Second {
			t.Errorf("expirationTimestamp is in %v, want a day less the 10s margin", left)
		}
		if !strings.Contains(tok.Stderr, "expiry_from=") {
			t.Errorf("-v did not trace the call:\n%s", tok.Stderr)
		}
		r.assertNoSecret(t, "token -v stderr", tok.Stderr)

		doctor := append([]string{"doctor"}, r.flags(cacheDir)...)
		text := testkit.Run(t, env, bin, doctor...)
		if text.Code != 0 || !strings.Contains(text.Stdout, "✓ protocol      client-assertion") || !strings.Contains(text.Stdout, "✓ token request broker issued a token for "+target) {
			t.Errorf("doctor exited %d:\n%s%s", text.Code, text.Stdout, text.Stderr)
		}
		r.assertNoSecret(t, "doctor output", text.Stdout+text.Stderr)

		asJSON := testkit.Run(t, env, bin, append(doctor, "-o", "json")...)
		var report struct {
			OK     bool `json:"ok"`
			Checks []struct{ Name string }
		}
		if err := json.Unmarshal([]byte(asJSON.Stdout), &report); err != nil || !report.OK || asJSON.Code != 0 {
			t.Errorf("doctor -o json: exit %d, ok %v, %v:\n%s", asJSON.Code, report.OK, err, asJSON.Stdout)
		}
		r.assertNoSecret(t, "doctor -o json output", asJSON.Stdout+asJSON.Stderr)

		list := testkit.Run(t, env, bin, "cache", "list", "--cache-dir", cacheDir)
		if list.Code != 0 || !strings.Contains(list.Stdout, target) || !strings.Contains(list.Stdout, podSubject) {
			t.Errorf("cache list exited %d:\n%s%s", list.Code, list.Stdout, list.Stderr)
		}
		r.assertNoSecret(t, "cache list output", list.Stdout+list.Stderr)
		r.assertRequests(t, 3) // the token call, and one uncached request per doctor run
	})

	t.Run("refused: one line, no secret", func(t *testing.T) {
		r := newAssertionRemote(t, bin, brokertest.Options{ClientID: clientID, Allow: []string{"system:serviceaccount:argocd:someone-else"}})
		env := testkit.Env(t)
		tok := testkit.Run(t, env, bin, append([]string{"-v", "token"}, r.flags(t.TempDir())...)...)
		lines := strings.Split(strings.TrimSpace(tok.Stderr), "\n")
		last := lines[len(lines)-1]
		if tok.Code != 1 || tok.Stdout != "" || !strings.HasPrefix(last, "brokercred: error: broker ") ||
			!strings.Contains(last, `refused the client assertion: AADSTS700213 "invalid_client"`) ||
			!strings.Contains(last, `no federated identity credential on client "`+clientID+`" has subject "`+podSubject+`"`) {
			t.Errorf("token exited %d, stdout %q, last stderr line:\n%s", tok.Code, tok.Stdout, last)
		}
		r.assertNoSecret(t, "token -v stderr", tok.Stderr)

		doctor := testkit.Run(t, env, bin, append([]string{"doctor", "-o", "json"}, r.flags(t.TempDir())...)...)
		if doctor.Code != 1 || !strings.Contains(doctor.Stdout, "AADSTS700213") {
			t.Errorf("doctor exited %d:\n%s%s", doctor.Code, doctor.Stdout, doctor.Stderr)
		}
		r.assertNoSecret(t, "doctor output", doctor.Stdout+doctor.Stderr)
	})
}
