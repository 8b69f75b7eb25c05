package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// Soak settings: issue 8 asks for 8 loops over several targets while the
// broker issues 5-second tokens.
const (
	soakLoops    = 8
	soakTTL      = 5 * time.Second
	soakMargin   = time.Second // --refresh-margin, so a token is served for most of its life
	soakEnv      = "BROKERCRED_SOAK"
	soakMaxFails = 5 // failure messages kept for the report
)

var soakTargets = []string{"soak-east", "soak-west", "soak-north"}

// soakStats are the figures a soak reports.
type soakStats struct {
	invocations atomic.Int64
	failures    atomic.Int64 // exit ≠ 0, bad output, or the API refused a live token
	expired     atomic.Int64 // a token dead on arrival, refused as expired, or outliving its stamp
	staleStamp  atomic.Int64 // expirationTimestamp not after the moment the credential arrived

	mu       sync.Mutex
	messages []string
}

func (s *soakStats) fail(format string, args ...any) {
	s.failures.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.messages) < soakMaxFails {
		s.messages = append(s.messages, fmt.Sprintf(format, args...))
	}
}

// TestSoak runs only when BROKERCRED_SOAK holds a duration (for example
// 2m): 8 loops call brokercred back to back for 3 targets, one shared cache,
// while the broker issues 5-second tokens; each credential is used at once
// against an API stub that refuses expired tokens. It fails on any failed
// call or expired credential, and when the broker is asked far more often
// than once per served token lifetime per target (a cache that does not
// share). It logs the figures.
func TestSoak(t *testing.T) {
	raw := os.Getenv(soakEnv)
	if raw == "" {
		t.Skipf("set %s to a duration (for example 2m) to run the soak", soakEnv)
	}
	duration, err := time.ParseDuration(raw)
	if err != nil || duration <= 0 {
		t.Fatalf("%s=%q is not a positive duration", soakEnv, raw)
	}

	f := newFixture(t, withBroker(brokertest.Options{TTL: soakTTL}), withClusters(soakTargets...))
	f.writePodToken(t, brokertest.PodToken(podSubject, time.Now().Add(time.Hour+duration)))
	f.target = "" // each call names its own
	f.extra = []string{"--refresh-margin", soakMargin.String()}
	roots := x509.NewCertPool()
	for _, api := range f.APIs {
		roots.AppendCertsFromPEM(api.CAPEM())
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}

	var stats soakStats
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for loop := range soakLoops {
		wg.Go(func() {
			for n := loop; time.Now().Before(deadline); n++ {
				target := soakTargets[n%len(soakTargets)]
				soakOnce(&stats, f, target, client)
			}
		})
	}
	wg.Wait()

	reqs := map[string]int{}
	for _, r := range f.Broker.Requests() {
		reqs[r.Target]++
	}
	// A JWT exp is whole seconds, so a token lives 4 to 5 s, 4.5 s on average,
	// and is served until its expiry less the margin.
	served := soakTTL - 500*time.Millisecond - soakMargin
	expected := float64(duration) / float64(served)
	t.Logf("soak %v: %d loops, %d targets, %v tokens, --refresh-margin %v", duration, soakLoops, len(soakTargets), soakTTL, soakMargin)
	t.Logf("invocations %d (%.1f/s), failures %d, expired credentials %d, stamps not after arrival %d",
		stats.invocations.Load(), float64(stats.invocations.Load())/duration.Seconds(), stats.failures.Load(), stats.expired.Load(), stats.staleStamp.Load())
	for _, target := range soakTargets {
		t.Logf("broker requests for %s: %d (expected about %.0f = %v / %v served per token); API accepted %d, rejected %d",
			target, reqs[target], expected, duration, served, f.APIs[target].Accepted(), f.APIs[target].Rejected())
		if float64(reqs[target]) > 2*expected+3 {
			t.Errorf("broker got %d requests for %s, more than twice the %.0f expected: the cache is not shared", reqs[target], target, expected)
		}
	}
	for _, m := range stats.messages {
		t.Logf("failure: %s", m)
	}
	if n := stats.failures.Load(); n != 0 {
		t.Errorf("%d failed calls, want 0", n)
	}
	if n := stats.expired.Load(); n != 0 {
		t.Errorf("%d expired credentials served, want 0", n)
	}
}

// soakOnce runs one brokercred call for target and uses its credential at
// once against the target's API stub.
func soakOnce(stats *soakStats, f *fixture, target string, client *http.Client) {
	stats.invocations.Add(1)
	r, err := f.execute(append([]string{"token", "--target", target}, f.flags()...)...)
	arrived := time.Now()
	if err != nil || r.Code != 0 {
		stats.fail("%s: exit %d %v: %s", target, r.Code, err, strings.TrimSpace(r.Stderr))
		return
	}
	var cred execCredential
	if err := json.Unmarshal([]byte(r.Stdout), &cred); err != nil || cred.Status.Token == "" {
		stats.fail("%s: stdout is not an ExecCredential (%d bytes)", target, len(r.Stdout))
		return
	}
	tok := cred.Status.Token
	if !cred.Status.ExpirationTimestamp.After(arrived) {
		stats.staleStamp.Add(1)
	}
	claims, err := broker.ParseClaims(tok)
	switch {
	case err != nil || claims.Subject != podSubject:
		stats.fail("%s: the token is not for %s", target, podSubject)
		return
	case !claims.Expiry.After(arrived) || claims.Expiry.Before(cred.Status.ExpirationTimestamp):
		stats.expired.Add(1)
		return
	}
	if err := callAPI(client, f.APIs[target].URL, tok); err != nil {
		if verr := f.Broker.Verify(tok, target, time.Now()); verr != nil && strings.Contains(verr.Error(), "expired") {
			stats.expired.Add(1)
			return
		}
		stats.fail("%s: API stub: %v", target, err)
	}
}

// callAPI asks the API stub for /version with token, as client-go would.
func callAPI(client *http.Client, server, token string) error {
	req, err := http.NewRequest(http.MethodGet, server+"/version", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET /version: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /version: HTTP %d", resp.StatusCode)
	}
	return nil
}
