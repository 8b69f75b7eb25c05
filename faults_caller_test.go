//go:build unix

package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// callerFaults are what goes wrong in how brokercred is called: its pod
// token, flags, environment, KUBERNETES_EXEC_INFO and target, and a caller
// asking again.
func callerFaults() []faultCase {
	return []faultCase{
		{
			name:       "missing pod token file",
			setup:      func(t *testing.T, f *fixture) { f.tokenFile += ".missing" },
			wantExit:   1,
			wantStderr: "no such file; is automountServiceAccountToken off?",
		},
		{
			name: "empty pod token",
			setup: func(t *testing.T, f *fixture) {
				f.tokenFile = filepath.Join(t.TempDir(), "token")
				if err := os.WriteFile(f.tokenFile, []byte(" \n"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantExit:   1,
			wantStderr: "is empty; check the projected ServiceAccount token volume",
		},
		{
			name: "expired pod token",
			setup: func(t *testing.T, f *fixture) {
				f.writeTokenFile(t, brokertest.PodToken(podSubject, time.Now().Add(-time.Hour)))
			},
			wantExit:   1,
			wantStderr: "expired at",
		},
		{
			name: "http broker URL without --insecure-http",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = strings.Replace(f.brokerURL, "https://", "http://", 1)
			},
			wantExit:   1,
			wantStderr: "is plain http and would expose the pod token",
		},
		{
			name:       "unknown apiVersion in KUBERNETES_EXEC_INFO",
			env:        []string{`KUBERNETES_EXEC_INFO={"apiVersion":"client.authentication.k8s.io/v1alpha1","kind":"ExecCredential","spec":{}}`},
			wantExit:   1,
			wantStderr: `asks for apiVersion "client.authentication.k8s.io/v1alpha1"`,
		},
		{
			name:       "malformed KUBERNETES_EXEC_INFO",
			env:        []string{`KUBERNETES_EXEC_INFO={"apiVersion":`},
			wantExit:   1,
			wantStderr: "KUBERNETES_EXEC_INFO is not valid JSON",
		},
		{
			name:       "missing --target",
			setup:      func(t *testing.T, f *fixture) { f.target = "" },
			wantExit:   1,
			wantStderr: "no target cluster; set --target",
		},
		{
			name: "pod token is not a JWT",
			setup: func(t *testing.T, f *fixture) {
				f.writePodToken(t, "OPAQUE-SENTINEL-"+randomB64(48))
			},
			wantRequests: 1,
		},
		{
			name:         "pod token unreadable",
			unprivileged: true,
			setup: func(t *testing.T, f *fixture) {
				if err := os.Chmod(f.tokenFile, 0); err != nil {
					t.Fatal(err)
				}
				f.heal = append(f.heal, func() { _ = os.Chmod(f.tokenFile, 0o600) })
			},
			wantExit:   1,
			wantStderr: "permission denied; run as a user that can read it (fsGroup) or set --token-file",
		},
		{
			name:       "bad flag value",
			args:       []string{"--timeout", "soon"},
			wantExit:   80, // kong's usage error
			wantStderr: `--timeout: expected duration but got "soon"`,
		},
		{
			name:       "misspelt flag",
			args:       []string{"--refresh-margn", "5s"},
			wantExit:   80, // kong's usage error
			wantStderr: `unknown flag --refresh-margn, did you mean "--refresh-margin"?`,
		},
		{
			name:       "unknown protocol",
			args:       []string{"--protocol", "soap"},
			wantExit:   80, // kong's usage error
			wantStderr: `--protocol must be one of "get-target-token","get","token-exchange"`,
		},
		{
			name:       "unknown protocol from env",
			env:        []string{"BROKERCRED_PROTOCOL=soap"},
			wantExit:   80, // kong's usage error
			wantStderr: `--protocol must be one of "get-target-token","get","token-exchange"`,
		},
		badTarget("target with a newline", "prod\neast", false),
		badTarget("target with a terminal escape", "prod-\x1b[31meast", false),
		badTarget("cluster name with a NUL", "prod\x00east", true),
		badTarget("cluster name with a newline", "prod\neast", true),
		badTarget("cluster name with a right-to-left override", "prod\u202eeast", true),
		{
			name: "--insecure-http to a host that is not loopback",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL, f.caFile = "http://ou.example.com"+brokertest.Path, ""
			},
			args:       []string{"--insecure-http"},
			wantExit:   1,
			wantStderr: `--insecure-http allows only a loopback broker, not "ou.example.com"; use https for any other host`,
		},
		{
			name: "--insecure-http to loopback goes direct, never through HTTP_PROXY",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL, f.caFile = f.plainFront(t), ""
				f.env = append(f.env, proxyEverything(t)...)
			},
			// --no-cache: the healthy call after asks the https broker,
			// which is another cache key.
			args:         []string{"--insecure-http", "--no-cache"},
			wantRequests: 1,
			uncached:     true,
		},
		{
			name:       "--allowed-targets pins the target to another server",
			setup:      func(t *testing.T, f *fixture) { f.target = "" },
			args:       []string{"--allowed-targets", "prod-*=https://right.example:6443"},
			env:        []string{execInfo("https://evil.example:6443", `{"clusterName":"prod-east"}`)},
			wantExit:   1,
			wantStderr: `target "prod-east" is pinned to "https://right.example:6443" by --allowed-targets, not "https://evil.example:6443"; fix the cluster's server or the pin`,
		},
		{
			name: "--allowed-targets pin holds the cluster's server",
			// --target stays, agreeing with clusterName. --no-cache: the
			// healthy call after names no server, which is another cache
			// key.
			args:         []string{"--allowed-targets", "prod-*=https://right.example:6443", "--no-cache"},
			env:          []string{execInfo("https://right.example:6443", `{"clusterName":"prod-east"}`)},
			wantRequests: 1,
			uncached:     true,
		},
		{
			name: "client-go asks again for a fresh token: it was refused",
			setup: func(t *testing.T, f *fixture) {
				f.env = append(f.env, execInfo("", ""))
				f.prime(t)
				f.planted = append(f.planted, f.Broker.Issued()[0]) // refused: never served again
			},
			wantRequests: 2,
			check: func(t *testing.T, f *fixture, _, _ time.Time, cred execCredential) {
				// Asked again within 10 s of the forced refresh: the same
				// token, and no third request.
				r := f.call(t, "token")
				if r.Code != 0 || r.Stderr != "" {
					t.Fatalf("third call: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
				}
				if parseCredential(t, r.Stdout).Status.Token != cred.Status.Token {
					t.Errorf("third call within the 10 s window got another token than the forced refresh")
				}
				if got := len(f.Broker.Requests()); got != 2 {
					t.Errorf("after the third call the broker got %d requests, want still 2", got)
				}
			},
		},
		{
			name:         "a call by hand (no KUBERNETES_EXEC_INFO) asks again: served from the cache",
			setup:        func(t *testing.T, f *fixture) { f.prime(t) },
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, _, _ time.Time, cred execCredential) {
				if cred.Status.Token != f.Broker.Issued()[0] {
					t.Errorf("the second call got another token than the first")
				}
			},
		},
	}
}

// execInfo is KUBERNETES_EXEC_INFO as client-go sets it for a v1 call, with
// the cluster's server and config (raw JSON) when either is given, as
// provideClusterInfo passes them.
func execInfo(server, config string) string {
	spec := map[string]any{"interactive": false}
	if server != "" || config != "" {
		cluster := map[string]any{"server": server}
		if config != "" {
			cluster["config"] = json.RawMessage(config)
		}
		spec["cluster"] = cluster
	}
	info, err := json.Marshal(map[string]any{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "spec": spec})
	if err != nil {
		panic(err)
	}
	return "KUBERNETES_EXEC_INFO=" + string(info)
}

// badTarget is a case whose target is no cluster name: set by --target, or
// with clusterInfo as the cluster's config.clusterName in
// KUBERNETES_EXEC_INFO (the only way for a NUL, which neither argv nor the
// environment can carry). The call must refuse it in one line that quotes
// it, before asking the broker; then cache list must quote an entry
// labelled with it.
func badTarget(name, target string, clusterInfo bool) faultCase {
	tc := faultCase{
		name:       name,
		setup:      func(t *testing.T, f *fixture) { f.target = target },
		wantExit:   1,
		wantStderr: "target " + strconv.Quote(target) + " is not a cluster name; use at most 253 letters, digits and . _ - : / @ +",
		then:       listsQuoted(target),
	}
	if clusterInfo {
		config, err := json.Marshal(map[string]string{"clusterName": target})
		if err != nil {
			panic(err)
		}
		tc.setup = func(t *testing.T, f *fixture) { f.target = "" }
		tc.env = []string{execInfo("https://prod-east.example:6443", string(config))}
	}
	return tc
}

// listsQuoted relabels f's one cache entry as for target, as an entry
// written before targets were checked would be, and checks that cache list
// shows the label quoted, with no raw control character.
func listsQuoted(target string) func(*testing.T, *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		entries := cacheEntries(t, f)
		if len(entries) != 1 {
			t.Fatalf("cache holds entries %v, want exactly one", entries)
		}
		var e map[string]any
		if err := json.Unmarshal(mustRead(t, entries[0]), &e); err != nil {
			t.Fatal(err)
		}
		e["label"].(map[string]any)["target"] = target
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(entries[0], data, 0o600); err != nil {
			t.Fatal(err)
		}
		r := f.run(t, "cache", "list", "--cache-dir", f.cacheDir)
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("cache list: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
		}
		assertNoControl(t, "cache list", r.Stdout)
		if !strings.Contains(r.Stdout, strconv.Quote(target)) {
			t.Errorf("cache list does not show the target quoted as %s:\n%q", strconv.Quote(target), redact(r.Stdout))
		}
	}
}

// plainFront serves f's broker over plain http on loopback, a test broker
// for --insecure-http, and returns its endpoint URL.
func (f *fixture) plainFront(t *testing.T) string {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(mustRead(t, f.caFile)) {
		t.Fatal("broker CA file holds no certificate")
	}
	u, err := url.Parse(f.Broker.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	front.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	return srv.URL + brokertest.Path
}

// proxyEverything starts an HTTP proxy that answers nothing and fails the
// test at its end if anything reached it, and returns the environment that
// sends every request through it.
func proxyEverything(t *testing.T) []string {
	t.Helper()
	var reached, withAuth atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		if len(r.Header.Values("Authorization")) > 0 {
			withAuth.Add(1)
		}
		http.Error(w, "no", http.StatusBadGateway)
	}))
	t.Cleanup(func() {
		proxy.Close()
		if n := reached.Load(); n > 0 {
			t.Errorf("the proxy got %d requests (%d with an Authorization header), want none", n, withAuth.Load())
		}
	})
	var env []string
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		env = append(env, name+"="+proxy.URL)
	}
	return append(env, "NO_PROXY=", "no_proxy=")
}
