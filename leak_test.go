//go:build unix

package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// TestNoTokenLeaks drives every case of faultCases through the commands
// that TestFaults does not (`token -v` with its diagnostics, `doctor` in
// text and JSON, and `cache list` and `cache clear` on what they left) with
// a sentinel pod token, and checks that neither it, nor any token the
// broker minted or a test planted, shows in full or as any 8-character
// piece of its signature on stderr, on stdout (bar the credential's own
// token), in a cache file name, or in a listing, and that no output holds a
// raw control character. TestFaults checks plain `token` the same way.
func TestNoTokenLeaks(t *testing.T) {
	for _, tc := range faultCases() {
		for _, command := range []string{"token -v", "doctor", "doctor -o json"} {
			t.Run(tc.name+"/"+command, func(t *testing.T) {
				t.Parallel()
				f, _ := tc.arrange(t)
				r := f.call(t, strings.Fields(command)...)
				assertNoLeak(t, f, command, r)

				f.wrap = nil // the cache commands run as the user, outside the fault
				list := f.run(t, "cache", "list", "--cache-dir", f.cacheDir)
				assertNoLeak(t, f, "cache list", list)
				clear := f.run(t, "cache", "clear", "--cache-dir", f.cacheDir)
				assertNoLeak(t, f, "cache clear", clear)
				assertCacheClean(t, f)
			})
		}
	}
}

// assertNoLeak checks one process's output for every secret of f and for
// raw control characters. A successful `token` may print its credential's
// token on stdout, there only.
func assertNoLeak(t *testing.T, f *fixture, what string, r testkit.Result) {
	t.Helper()
	assertNoControl(t, what+" stderr", r.Stderr)
	assertNoControl(t, what+" stdout", r.Stdout)
	brokertest.NoLeak(t, what+" stderr", r.Stderr, f.secrets()...)
	stdout := r.Stdout
	if strings.HasPrefix(what, "token") && r.Code == 0 {
		stdout = strings.Replace(stdout, parseCredential(t, stdout).Status.Token, "", 1)
	}
	brokertest.NoLeak(t, what+" stdout", stdout, f.secrets()...)
}

// TestRedirectKeepsPodTokenHome checks that a broker redirecting elsewhere
// (a login page, a moved endpoint, a hostile proxy) never gets the pod token
// sent on: the second server sees no request at all, and the call fails
// saying where the redirect pointed.
func TestRedirectKeepsPodTokenHome(t *testing.T) {
	elsewhere := brokertest.NewServer(brokertest.Options{})
	t.Cleanup(elsewhere.Close)
	for _, code := range []int{
		http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect,
	} {
		for _, location := range []string{elsewhere.URL, strings.Replace(elsewhere.URL, "https://", "http://", 1)} {
			t.Run(http.StatusText(code)+" to "+location[:strings.Index(location, ":")], func(t *testing.T) {
				f := newFixture(t)
				f.Broker.Queue(brokertest.Response{Status: code, Header: map[string]string{"Location": location + "?targetName=prod-east"}})

				r := f.call(t, "token")

				assertOneErrorLine(t, r, "redirected (HTTP ")
				assertNoLeak(t, f, "token", r)
				if got := len(f.Broker.Requests()); got != 1 {
					t.Errorf("broker got %d requests, want 1 (a redirect is not retried)", got)
				}
				for _, req := range elsewhere.Requests() {
					if req.Authorization {
						t.Fatalf("the redirect target received an Authorization header")
					}
				}
				if got := len(elsewhere.Requests()); got != 0 {
					t.Errorf("the redirect target got %d requests, want none", got)
				}
			})
		}
	}
}
