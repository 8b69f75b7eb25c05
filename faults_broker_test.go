//go:build unix

package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// brokerFaults are what goes wrong at the broker or on the way to it: no
// answer, a slow, reset, refused, rate-limited, redirected or malformed
// one, a token that is dead or echoes the pod's, a stated expiry that lies.
func brokerFaults() []faultCase {
	return []faultCase{
		{
			name: "connection refused",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = "https://" + closedPort(t) + brokertest.Path
			},
			wantExit:   1,
			wantStderr: "connection refused; check the URL, DNS and network policy",
		},
		{
			name: "DNS failure",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = "https://broker.brokercred.invalid" + brokertest.Path
			},
			wantExit:   1,
			wantStderr: "reach broker broker.brokercred.invalid: dial tcp: lookup broker.brokercred.invalid",
		},
		{
			name: "TLS certificate for another host name",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = strings.Replace(f.brokerURL, "127.0.0.1", "localhost", 1)
			},
			wantExit:   1,
			wantStderr: "presented a certificate for another host name; fix --broker-url",
		},
		{
			name: "TLS certificate expired",
			setup: func(t *testing.T, f *fixture) {
				expired := brokertest.NewServer(brokertest.Options{ExpiredCert: true})
				t.Cleanup(expired.Close)
				f.brokerURL, f.caFile = expired.URL, expired.CAFile(t.TempDir())
			},
			wantExit:   1,
			wantStderr: "presented an invalid certificate (expired or not yet valid); renew the broker's certificate or fix the clock",
		},
		{
			name: "hanging broker",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Hang: true})
			},
			args:         []string{"--timeout", "1s"},
			wantExit:     1,
			wantStderr:   "did not answer in time; check it is up and reachable, or raise --timeout",
			wantRequests: 1,
		},
		{
			name: "slow body",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.Broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "text/plain"}, Body: tok, Trickle: 100 * time.Millisecond})
			},
			args:         []string{"--timeout", "1s"},
			wantExit:     1,
			wantStderr:   "did not finish its answer in time",
			wantRequests: 1,
		},
		{
			name: "connection reset once, then a token",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(reset)
			},
			wantRequests: 2,
		},
		{
			name: "connection reset on every try",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(reset, reset, reset, reset, reset)
			},
			wantExit:     1,
			wantStderr:   "connection reset by peer; check the URL, DNS and network policy",
			wantRequests: 5,
		},
		{
			name: "500 and 502, then a token",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(status500, status502)
			},
			wantRequests: 3,
		},
		{
			name: "429 with Retry-After inside --timeout",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Status: 429, Header: map[string]string{"Retry-After": "1"}})
			},
			args:         []string{"--timeout", "10s"},
			wantRequests: 2,
		},
		{
			name: "429 with Retry-After beyond --timeout",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Status: 429, Header: map[string]string{"Retry-After": "3600"}})
			},
			args:         []string{"--timeout", "3s"},
			wantExit:     1,
			wantStderr:   "is rate limiting (HTTP 429) and did not recover within --timeout",
			wantRequests: 1,
		},
		{
			name: "401 is not retried and names the subject",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Status: 401, Body: "token rejected"})
			},
			wantExit:     1,
			wantStderr:   "broker refused the identity \"" + podSubject + "\" for target \"prod-east\" (HTTP 401)",
			wantRequests: 1,
		},
		{
			name: "malformed JSON",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.Broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "application/json"}, Body: `{"token": "` + tok})
			},
			wantExit:     1,
			wantStderr:   "answered with malformed JSON (syntax error at byte",
			wantRequests: 1,
		},
		{
			name: "endless body",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
				f.Broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "text/plain"}, Body: strings.Repeat(tok, 64), Endless: true})
			},
			wantExit:     1,
			wantStderr:   "answered with a body larger than 256 KiB, which is no token; check --broker-url",
			wantRequests: 1,
		},
		{
			name:         "token without exp uses --default-ttl",
			opts:         brokertest.Options{NoExp: true},
			args:         []string{"--default-ttl", "90s"},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, start, end time.Time, cred execCredential) {
				// 90s lifetime, reported the default 10s refresh margin early.
				lo, hi := start.Add(80*time.Second).Truncate(time.Second), end.Add(80*time.Second)
				if got := cred.Status.ExpirationTimestamp; got.Before(lo) || got.After(hi) {
					t.Errorf("expirationTimestamp is %v after the call, want about 80s (90s --default-ttl less the 10s margin)", got.Sub(end))
				}
			},
		},
		{
			name: "broker refuses the subject (403)",
			opts: brokertest.Options{Allow: []string{podSubject}},
			setup: func(t *testing.T, f *fixture) {
				f.writeTokenFile(t, sentinelPodToken(refusedSubject))
			},
			wantExit:     1,
			wantStderr:   "broker refused the identity \"" + refusedSubject + "\" for target \"prod-east\" (HTTP 403)",
			wantRequests: 1,
		},
		{
			name: "wrong broker path (404)",
			setup: func(t *testing.T, f *fixture) {
				f.brokerURL = strings.TrimSuffix(f.brokerURL, brokertest.Path) + "/api/get-token"
			},
			wantExit:   1,
			wantStderr: "has no such endpoint (HTTP 404)",
		},
		{
			name: "HTML login page with 200",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{
					Status: 200,
					Header: map[string]string{"Content-Type": "text/html; charset=utf-8"},
					Body:   "<html><body>Sign in, secret-page-marker</body></html>",
				})
				f.planted = append(f.planted, "secret-page-marker")
			},
			wantExit:     1,
			wantStderr:   "answered with an HTML page, not a token",
			wantRequests: 1,
		},
		{
			name: "empty body",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Status: 200, Header: map[string]string{"Content-Type": "text/plain"}})
			},
			wantExit:     1,
			wantStderr:   "answered with an empty body",
			wantRequests: 1,
		},
		{
			name: "503 three times then a token",
			setup: func(t *testing.T, f *fixture) {
				unavailable := brokertest.Response{Status: 503, Body: "busy"}
				f.Broker.Queue(unavailable, unavailable, unavailable)
			},
			wantRequests: 4,
		},
		{
			name:       "broker CA not trusted",
			setup:      func(t *testing.T, f *fixture) { f.caFile = "" },
			wantExit:   1,
			wantStderr: "certificate from an unknown authority; set --ca-file",
		},
		{
			name: "broker issues an expired token",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue("prod-east", podSubject, time.Now().Add(-time.Minute))
				f.Broker.Queue(brokertest.Response{Status: 200, Header: map[string]string{"Content-Type": "text/plain"}, Body: tok})
			},
			wantExit:     1,
			wantStderr:   "broker issued a token for target \"prod-east\" that expired at",
			wantRequests: 1,
		},
		{
			name: "broker echoes the pod token as its answer",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(brokertest.Response{Header: map[string]string{"Content-Type": "text/plain"}, Body: f.podToken})
			},
			wantExit:     1,
			wantStderr:   "sent back the pod token itself instead of a token for target \"prod-east\"; --broker-url points at an endpoint that echoes its request: fix --broker-url",
			wantRequests: 1,
		},
		{
			name: "broker echoes the pod token in JSON",
			setup: func(t *testing.T, f *fixture) {
				f.Broker.Queue(jsonAnswer(f.podToken, "2099-01-01T00:00:00Z"))
			},
			wantExit:     1,
			wantStderr:   "sent back the pod token itself instead of a token for target \"prod-east\"",
			wantRequests: 1,
		},
		{
			name: "redirect to a host made of a piece of the pod token",
			setup: func(t *testing.T, f *fixture) {
				random := strings.TrimPrefix(f.podToken[strings.LastIndex(f.podToken, ".")+1:], "POD-SENTINEL-")
				f.redirectTo(t, "https://"+random[:24]+".example.com/")
			},
			wantExit:   1,
			wantStderr: `redirected (HTTP 302) to "https://[redacted].example.com"; set --broker-url to the final https URL`,
		},
		{
			name: "redirect with the whole pod token in its path",
			setup: func(t *testing.T, f *fixture) {
				// Too long for a host name (63 bytes a label), so in the path
				// and query instead.
				f.redirectTo(t, "https://broker.example.com/"+f.podToken+"?token="+f.podToken)
			},
			wantExit:   1,
			wantStderr: `redirected (HTTP 302) to "https://broker.example.com"; set --broker-url to the final https URL`,
		},
		{
			name: "stated expiry far beyond the token's exp",
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Minute))
				f.Broker.Queue(jsonAnswer(tok, "2099-01-01T00:00:00Z"))
			},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, _, _ time.Time, cred execCredential) {
				exp := tokenClaims(t, cred.Status.Token).Expiry
				if got, limit := cred.Status.ExpirationTimestamp, exp.Add(-10*time.Second); got.After(limit) {
					t.Errorf("expirationTimestamp %v is after the token's exp %v less the 10s margin", got, exp)
				}
				if got := entryExpiry(t, f); !got.Equal(exp) {
					t.Errorf("cache entry expires %v, want the token's exp %v", got, exp)
				}
			},
		},
		{
			name: "stated lifetime beyond --max-ttl",
			opts: brokertest.Options{NoExp: true},
			setup: func(t *testing.T, f *fixture) {
				tok := f.Broker.Issue(f.target, podSubject, time.Time{})
				f.Broker.Queue(jsonAnswer(tok, "2099-01-01T00:00:00Z"))
			},
			args:         []string{"--max-ttl", "1h"},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, start, end time.Time, cred execCredential) {
				// Capped at an hour, reported the default 10s margin early.
				lo, hi := start.Add(time.Hour-10*time.Second).Truncate(time.Second), end.Add(time.Hour-10*time.Second)
				if got := cred.Status.ExpirationTimestamp; got.Before(lo) || got.After(hi) {
					t.Errorf("expirationTimestamp is %v after the call, want about 59m50s (--max-ttl 1h less the 10s margin)", got.Sub(end))
				}
				if got := entryExpiry(t, f); got.Before(start.Add(time.Hour)) || got.After(end.Add(time.Hour)) {
					t.Errorf("cache entry expires %v after the call, want about 1h (--max-ttl)", got.Sub(end))
				}
			},
		},
	}
}

// Canned faults; once the queue is empty the broker answers with a real token.
var (
	status500 = brokertest.Response{Status: 500, Body: "internal error"}
	status502 = brokertest.Response{Status: 502, Body: "bad gateway"}
	reset     = brokertest.Response{Reset: true}
)

// refusedSubject is a pod identity the broker of the 403 case refuses.
const refusedSubject = "system:serviceaccount:argocd:someone-else"

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// jsonAnswer is a broker answer in the JSON shape: token, stating that it
// expires at expiry (RFC 3339).
func jsonAnswer(token, expiry string) brokertest.Response {
	return brokertest.Response{
		Header: map[string]string{"Content-Type": "application/json"},
		Body:   `{"token":"` + token + `","expirationTimestamp":"` + expiry + `"}`,
	}
}

// redirectTo points f at a broker of its own that answers the next two
// requests (doctor makes two: its probe and its token request) with a 302
// to location.
func (f *fixture) redirectTo(t *testing.T, location string) {
	t.Helper()
	other := brokertest.NewServer(brokertest.Options{})
	t.Cleanup(other.Close)
	redirect := brokertest.Response{Status: http.StatusFound, Header: map[string]string{"Location": location}}
	other.Queue(redirect, redirect)
	f.brokerURL, f.caFile = other.URL, other.CAFile(t.TempDir())
}

// entryExpiry is the expiry that f's one cache entry records.
func entryExpiry(t *testing.T, f *fixture) time.Time {
	t.Helper()
	entries := cacheEntries(t, f)
	if len(entries) != 1 {
		t.Fatalf("cache holds entries %v, want exactly one", entries)
	}
	var e struct {
		Expiry time.Time `json:"expiry"`
	}
	if err := json.Unmarshal(mustRead(t, entries[0]), &e); err != nil {
		t.Fatalf("cache entry: %v", err)
	}
	return e.Expiry
}
