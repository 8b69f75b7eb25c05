package main

import (
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// protocolRow is how the process tests run brokercred by one protocol
// against brokertest's fake of it. A new protocol needs its fake in
// brokertest and a row here; TestProtocols then runs it every way a user
// does.
type protocolRow struct {
	broker brokertest.Options // the fake broker's settings
	// flags are the protocol's own flags, after the fixture's; setup, when
	// set, adds what needs the test's files (a client secret file) and
	// plants the secrets nothing may show.
	flags []string
	setup func(t *testing.T, f *fixture)
	// env is the protocol's settings given as environment variables, as an
	// Argo CD execProviderConfig's env would give them.
	env []string
	// audience is what the target's API server trusts: the target as the
	// protocol's settings put it in the token's aud ("" means the target).
	audience string
	// asked checks reqs, the broker's requests while brokercred obtained
	// tokens tokens from b.
	asked func(t *testing.T, b *brokertest.Server, reqs []brokertest.Request, tokens int)
	// perToken is how many requests one token takes (0 means 1).
	perToken int
	verbose  []string // what `token -v` says besides the expiry's source
	doctor   []string // what a healthy `doctor` says besides the protocol and the token
	refused  refusal
}

// refusal is how a row's broker turns the pod away, and what brokercred
// then says.
type refusal struct {
	broker brokertest.Options
	env    []string
	stderr []string // in the one error line of `token`
	doctor string   // in `doctor -o json`'s report
}

// clientID is the OAuth client of the token-exchange and client-assertion
// rows: an Entra application's client id.
const clientID = "00000000-0000-0000-0000-0000000a4905"

// clientSecret is the token-exchange row's client secret, as distinctive as
// the pod token so that a leak is easy to see.
const clientSecret = "CLIENT-SECRET-SENTINEL-6c1f0a9d2e7b4c83a5f0"

// otherSubject is a pod identity that no row's broker accepts.
const otherSubject = "system:serviceaccount:argocd:someone-else"

// protocolRows are the rows by protocol name.
func protocolRows() map[string]protocolRow {
	return map[string]protocolRow{
		"get-target-token": {
			asked: eachRequest(func(r brokertest.Request) bool {
				return r.Subject == podSubject && r.Target == "prod-east"
			}),
			refused: refusal{
				broker: brokertest.Options{Allow: []string{otherSubject}},
				stderr: []string{`broker refused the identity "` + podSubject + `" for target "prod-east" (HTTP 403)`},
				doctor: "HTTP 403",
			},
		},
		"token-exchange": {
			broker: brokertest.Options{ClientID: clientID, ClientSecret: clientSecret},
			flags:  []string{"--client-id", clientID},
			setup: func(t *testing.T, f *fixture) {
				file := filepath.Join(t.TempDir(), "client-secret")
				if err := os.WriteFile(file, []byte(clientSecret), 0o600); err != nil {
					t.Fatal(err)
				}
				f.extra = append(f.extra, "--client-secret-file", file)
				f.planted = append(f.planted, clientSecret)
			},
			asked: eachRequest(func(r brokertest.Request) bool {
				return r.Subject == podSubject && r.Target == "prod-east" && r.Authorization &&
					r.Form.Get("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange" && !r.Form.Has("client_secret")
			}),
			refused: refusal{
				broker: brokertest.Options{ClientID: clientID, ClientSecret: clientSecret, Allow: []string{otherSubject}},
				stderr: []string{`invalid_grant`},
				doctor: "invalid_grant",
			},
		},
		"vault": {
			broker:   brokertest.Options{Vault: brokertest.VaultOptions{LoginRole: "argocd", Namespace: "platform"}},
			flags:    []string{"--vault-auth-mount", "kubernetes", "--vault-namespace", "platform"},
			env:      []string{"BROKERCRED_VAULT_LOGIN_ROLE=argocd"},
			asked:    vaultAsked,
			perToken: 3, // login, identity token, revoke
			verbose:  []string{"vault token revoked"},
			doctor: []string{
				`✓ vault login   auth/kubernetes role "argocd"`,
				`✓ vault token   identity role "prod-east": client_id "prod-east"`,
				`✓ vault revoke  Vault token revoked`,
			},
			refused: refusal{
				broker: brokertest.Options{Vault: brokertest.VaultOptions{LoginRole: "argocd", Namespace: "platform"}},
				env:    []string{"BROKERCRED_VAULT_LOGIN_ROLE=someone-else"},
				stderr: []string{"brokercred: error: vault login at "},
				doctor: "vault login",
			},
		},
		"client-assertion": {
			broker:   brokertest.Options{ClientID: clientID},
			flags:    []string{"--client-id", clientID, "--scope", "api://{target}/.default"},
			audience: "api://prod-east",
			asked: eachRequest(func(r brokertest.Request) bool {
				f := r.Form
				return r.Subject == podSubject && f.Get("client_id") == clientID && f.Get("scope") == "api://prod-east/.default" &&
					f.Get("grant_type") == "client_credentials" && !f.Has("client_assertion")
			}),
			refused: refusal{
				broker: brokertest.Options{ClientID: clientID, Allow: []string{otherSubject}},
				stderr: []string{
					"brokercred: error: broker ",
					`refused the client assertion: AADSTS700213 "invalid_client"`,
					`no federated identity credential on client "` + clientID + `" has subject "` + podSubject + `"`,
				},
				doctor: "AADSTS700213",
			},
		},
	}
}

// eachRequest checks that the broker got one request per token, each
// carrying a pod token (a doctor's anonymous probe carries none) and each
// as ok says.
func eachRequest(ok func(brokertest.Request) bool) func(*testing.T, *brokertest.Server, []brokertest.Request, int) {
	return func(t *testing.T, _ *brokertest.Server, reqs []brokertest.Request, tokens int) {
		t.Helper()
		var asked []brokertest.Request
		for _, r := range reqs {
			if r.Subject != "" || r.Authorization || r.Form != nil {
				asked = append(asked, r)
			}
		}
		if len(asked) != tokens {
			t.Errorf("broker got %d token requests, want %d", len(asked), tokens)
		}
		for _, r := range asked {
			if !ok(r) {
				t.Errorf("broker got an unexpected request: %s asked for %q by %q, form %v", r.Protocol, r.Target, r.Subject, r.Form)
			}
		}
	}
}

// vaultAsked checks that Vault saw a login, an identity token request and a
// revoke per token, each in the namespace and for the pod, and holds no
// live Vault token.
func vaultAsked(t *testing.T, b *brokertest.Server, reqs []brokertest.Request, tokens int) {
	t.Helper()
	count := map[string]int{}
	for _, r := range reqs {
		if r.Vault == nil {
			t.Errorf("a %s request reached Vault", r.Protocol)
			continue
		}
		count[r.Vault.Step]++
		if r.Vault.Namespace != "platform" || r.Subject != podSubject {
			t.Errorf("%s request: namespace %q, subject %q", r.Vault.Step, r.Vault.Namespace, r.Subject)
		}
	}
	if count["login"] != tokens || count["token"] != tokens || count["revoke"] != tokens || len(reqs) != 3*tokens {
		t.Errorf("Vault saw %v, want %d of each step", count, tokens)
	}
	if live := b.LiveVaultTokens(); len(live) != 0 {
		t.Errorf("%d Vault tokens left live", len(live))
	}
}

// TestProtocols runs the brokercred binary by every protocol it registers,
// the ways it is run: by real client-go's exec authenticator in both
// ExecCredential versions, by every real kubectl on this machine (the
// dispatcher on PATH among them), and by hand with -v, doctor in text and
// JSON, and cache list; refused too. Nothing any of them prints may hold a
// secret.
func TestProtocols(t *testing.T) {
	t.Parallel() // its own fixtures; the kubectl-bound tests overlap each other
	rows := protocolRows()
	for name := range rows {
		if !slices.Contains(broker.Names(), name) {
			t.Errorf("protocolRows has a row for %q, which brokercred does not register", name)
		}
	}
	for _, name := range broker.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			row, ok := rows[name]
			if !ok {
				t.Fatalf("protocol %s has no row in protocolRows: add one, with its fake in brokertest", name)
			}
			if !slices.Contains(brokertest.Protocols(), name) {
				t.Fatalf("brokertest has no fake of protocol %s: add one, and its line in brokertest's routes", name)
			}
			t.Run("client-go", func(t *testing.T) { testProtocolClientGo(t, name, row) })
			t.Run("client-go refused", func(t *testing.T) { testProtocolClientGoRefused(t, name, row) })
			t.Run("kubectl", func(t *testing.T) { testProtocolKubectl(t, name, row) })
			t.Run("by hand", func(t *testing.T) { testProtocolByHand(t, name, row) })
			t.Run("refused by hand", func(t *testing.T) { testProtocolRefused(t, name, row) })
		})
	}
}

// newProtocolFixture starts row's broker with opts for protocol, and an API
// server for the fixture's target that trusts the row's audience, and
// configures brokercred for them with the row's flags and env.
func newProtocolFixture(t *testing.T, protocol string, row protocolRow, opts brokertest.Options, env []string) (*fixture, *brokertest.APIServer) {
	t.Helper()
	f := newFixture(t, withProtocol(protocol), withBroker(opts))
	api := f.AddCluster(t, f.target, cmp.Or(row.audience, f.target))
	f.extra = append(f.extra, row.flags...)
	if row.setup != nil {
		row.setup(t, f)
	}
	f.env = append(f.env, env...)
	return f, api
}

// execEnv is env as an exec config's env, with the cache's default dir in a
// temp dir.
func execEnv(t *testing.T, env []string) []clientcmdapi.ExecEnvVar {
	vars := []clientcmdapi.ExecEnvVar{{Name: "XDG_CACHE_HOME", Value: t.TempDir()}}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		vars = append(vars, clientcmdapi.ExecEnvVar{Name: name, Value: value})
	}
	return vars
}

// testProtocolClientGo has client-go call the API server twice through its
// exec authenticator: one token from the broker, the second call from
// client-go's own cache, one entry in brokercred's.
func testProtocolClientGo(t *testing.T, protocol string, row protocolRow) {
	for _, tc := range []struct {
		apiVersion         string
		provideClusterInfo bool
	}{
		{"client.authentication.k8s.io/v1", true},
		{"client.authentication.k8s.io/v1beta1", false},
	} {
		t.Run(tc.apiVersion, func(t *testing.T) {
			f, api := newProtocolFixture(t, protocol, row, row.broker, row.env)
			cfg := f.restConfig(f.target, tc.apiVersion)
			cfg.ExecProvider.ProvideClusterInfo = tc.provideClusterInfo
			cfg.ExecProvider.Env = execEnv(t, row.env)
			for call := 1; call <= 2; call++ {
				got, err := testkit.ServerVersion(cfg)
				if err != nil {
					t.Fatalf("call %d: ServerVersion: %v", call, err)
				}
				if got != brokertest.APIServerVersion {
					t.Errorf("call %d: server version %q, want %q", call, got, brokertest.APIServerVersion)
				}
				if n := api.Accepted(); n != int64(call) {
					t.Errorf("after call %d the API server accepted %d requests, want %d", call, n, call)
				}
			}
			if n := api.Rejected(); n != 0 {
				t.Errorf("API server rejected %d requests, want 0", n)
			}
			row.asked(t, f.Broker, f.Broker.Requests(), 1)
			if entries := cachedEntries(t, f.cacheDir); len(entries) != 1 {
				t.Errorf("cache holds %d entries, want 1", len(entries))
			}
		})
	}
}

// testProtocolClientGoRefused has client-go call the API server through a
// broker that refuses the pod: client-go reports the plugin's failure, the
// API server sees no request, the broker one.
func testProtocolClientGoRefused(t *testing.T, protocol string, row protocolRow) {
	f, api := newProtocolFixture(t, protocol, row, row.refused.broker, row.refused.env)
	cfg := f.restConfig(f.target, "client.authentication.k8s.io/v1")
	cfg.ExecProvider.Env = execEnv(t, row.refused.env)
	_, err := testkit.ServerVersion(cfg)
	if err == nil {
		t.Fatal("ServerVersion succeeded with a broker that refuses the pod")
	}
	for _, want := range []string{"getting credentials", "exec: executable " + binary + " failed with exit code 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", redact(err.Error()), want)
		}
	}
	brokertest.NoLeak(t, "client-go's error", err.Error(), f.secrets()...)
	if n := api.Accepted(); n != 0 {
		t.Errorf("API server accepted %d requests, want 0", n)
	}
	if n := len(f.Broker.Requests()); n != 1 {
		t.Errorf("broker got %d requests, want 1", n)
	}
}

// testProtocolKubectl runs `kubectl get --raw /version` twice with every
// kubectl, each with a kubeconfig of its own that `brokercred config
// kubeconfig` generated, and a cache of its own: the first run asks the
// broker, the second is served from the disk cache.
func testProtocolKubectl(t *testing.T, protocol string, row protocolRow) {
	kubectls := testkit.Kubectls()
	if len(kubectls) == 0 {
		t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
	}
	f, api := newProtocolFixture(t, protocol, row, row.broker, row.env)
	for _, name := range testkit.SortedNames(kubectls) {
		t.Run(name, func(t *testing.T) {
			f.cacheDir = filepath.Join(t.TempDir(), "cache")
			config := f.kubeconfig(t, f.target, false)
			accepted, rejected, before := api.Accepted(), api.Rejected(), len(f.Broker.Requests())
			for run := 1; run <= 2; run++ {
				r := runKubectl(t, kubectls[name], row.env, "--kubeconfig", config, "get", "--raw", "/version")
				if r.Code != 0 || !strings.Contains(r.Stdout, brokertest.APIServerVersion) {
					t.Fatalf("run %d: %s get --raw /version exited %d, stdout %q, stderr:\n%s", run, name, r.Code, redact(r.Stdout), redact(r.Stderr))
				}
				brokertest.NoLeak(t, name+" output", r.Stdout+r.Stderr, f.secrets()...)
			}
			// The gcloud kubectl dispatcher asks for /version itself
			// before it picks a kubectl: at least one request per run.
			if n := api.Accepted() - accepted; n < 2 || api.Rejected() != rejected {
				t.Errorf("API server accepted %d and rejected %d new requests, want at least 2 and none", n, api.Rejected()-rejected)
			}
			if n := len(f.Broker.Requests()) - before; n != cmp.Or(row.perToken, 1) {
				t.Errorf("broker got %d new requests, want those of one token, %d (an empty cache, then the cache)", n, cmp.Or(row.perToken, 1))
			}
		})
	}
	row.asked(t, f.Broker, f.Broker.Requests(), len(kubectls))
}

// testProtocolByHand runs what a person runs: `token -v`, `doctor` in text
// and JSON, and `cache list`, against a broker issuing day-long tokens.
func testProtocolByHand(t *testing.T, protocol string, row protocolRow) {
	opts := row.broker
	opts.TTL = 24 * time.Hour
	f, _ := newProtocolFixture(t, protocol, row, opts, row.env)
	audience := cmp.Or(row.audience, f.target)

	start := time.Now()
	tok := f.call(t, "-v", "token")
	end := time.Now()
	if tok.Code != 0 {
		t.Fatalf("token -v exited %d; stderr:\n%s", tok.Code, redact(tok.Stderr))
	}
	brokertest.NoLeak(t, "token -v stderr", tok.Stderr, f.secrets()...)
	for _, want := range append([]string{"expiry_from="}, row.verbose...) {
		if !strings.Contains(tok.Stderr, want) {
			t.Errorf("token -v does not say %q:\n%s", want, redact(tok.Stderr))
		}
	}
	cred := parseCredential(t, tok.Stdout)
	if err := f.Broker.Verify(cred.Status.Token, audience, end); err != nil {
		t.Errorf("credential's token does not verify for %s: %v", audience, err)
	}
	// A day-long token, reported the default 10s refresh margin early; its
	// exp has whole seconds.
	lo, hi := start.Add(24*time.Hour-10*time.Second).Truncate(time.Second), end.Add(24*time.Hour-10*time.Second)
	if exp := cred.Status.ExpirationTimestamp; exp.Before(lo) || exp.After(hi) {
		t.Errorf("expirationTimestamp is %v after the call, want a day less the 10s margin", exp.Sub(end))
	}

	text := f.call(t, "doctor")
	if text.Code != 0 {
		t.Errorf("doctor exited %d:\n%s%s", text.Code, redact(text.Stdout), redact(text.Stderr))
	}
	for _, want := range append([]string{"✓ protocol      " + protocol, "✓ token request broker issued a token for " + f.target}, row.doctor...) {
		if !strings.Contains(text.Stdout, want) {
			t.Errorf("doctor does not say %q:\n%s", want, redact(text.Stdout))
		}
	}
	brokertest.NoLeak(t, "doctor output", text.Stdout+text.Stderr, f.secrets()...)

	asJSON := f.call(t, "doctor", "-o", "json")
	var report struct {
		OK bool `json:"ok"`
	}
	if err := json.Unmarshal([]byte(asJSON.Stdout), &report); err != nil || !report.OK || asJSON.Code != 0 {
		t.Errorf("doctor -o json: exit %d, ok %v, %v:\n%s", asJSON.Code, report.OK, err, redact(asJSON.Stdout))
	}
	brokertest.NoLeak(t, "doctor -o json output", asJSON.Stdout+asJSON.Stderr, f.secrets()...)

	list := f.run(t, "cache", "list", "--cache-dir", f.cacheDir)
	if list.Code != 0 || !strings.Contains(list.Stdout, f.target) || !strings.Contains(list.Stdout, podSubject) {
		t.Errorf("cache list exited %d:\n%s%s", list.Code, redact(list.Stdout), redact(list.Stderr))
	}
	brokertest.NoLeak(t, "cache list output", list.Stdout+list.Stderr, f.secrets()...)
	row.asked(t, f.Broker, f.Broker.Requests(), 3) // the token call, and one uncached token per doctor run
}

// testProtocolRefused runs `token -v` and `doctor -o json` by hand against a
// broker that refuses the pod: one error line naming the cause, no secret.
func testProtocolRefused(t *testing.T, protocol string, row protocolRow) {
	f, _ := newProtocolFixture(t, protocol, row, row.refused.broker, row.refused.env)
	tok := f.call(t, "-v", "token")
	lines := strings.Split(strings.TrimSpace(tok.Stderr), "\n")
	last := lines[len(lines)-1]
	if tok.Code != 1 || tok.Stdout != "" || !strings.HasPrefix(last, "brokercred: error: ") {
		t.Errorf("token exited %d, stdout %q, last stderr line:\n%s", tok.Code, redact(tok.Stdout), redact(last))
	}
	for _, want := range row.refused.stderr {
		if !strings.Contains(last, want) {
			t.Errorf("the error line does not say %q:\n%s", want, redact(last))
		}
	}
	brokertest.NoLeak(t, "token -v stderr", tok.Stderr, f.secrets()...)

	doctor := f.call(t, "doctor", "-o", "json")
	if doctor.Code != 1 || !strings.Contains(doctor.Stdout, row.refused.doctor) {
		t.Errorf("doctor exited %d, want 1 and a report saying %q:\n%s%s", doctor.Code, row.refused.doctor, redact(doctor.Stdout), redact(doctor.Stderr))
	}
	brokertest.NoLeak(t, "doctor output", doctor.Stdout+doctor.Stderr, f.secrets()...)
}
