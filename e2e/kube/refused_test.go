package kube

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// longTTL is the life of the tokens in testRefusedToken: long enough that
// recovering before it runs out cannot be the token simply expiring.
const longTTL = 10 * time.Minute

// testRefusedToken: the remote cluster stops accepting the tokens already
// issued while they are unexpired (a claimValidationRules cutoff on iat,
// which kube-apiserver reloads by itself, as after a key rotation or a change
// of whom it trusts). client-go's 401 makes it run brokercred again; brokercred
// must fetch a new token then, one broker round trip, and the next call
// works, where serving the cached token again would fail until it expires
// ten minutes later. It runs last: it rewrites the remote's
// AuthenticationConfiguration.
func (w *world) testRefusedToken(t *testing.T) {
	long := brokertest.NewServer(brokertest.Options{
		TTL:    longTTL,
		Allow:  []string{subject(controller)},
		Review: brokertest.TokenReview(w.control.AdminHTTP, w.control.URL, audience),
	})
	t.Cleanup(long.Close)
	w.reloadAuthentication(t, jwtAuthenticator(w.broker, 0), jwtAuthenticator(long, 0))
	cacheDir := t.TempDir()
	args := []string{"--broker-url", long.URL, "--ca-file", long.CAFile(t.TempDir()),
		"--token-file", w.tokenFiles[controller], "--target", target, "--cache-dir", cacheDir}
	first := runBrokercred(t, args) // by hand: fills the cache with the token client-go will be served
	if first.code != 0 {
		t.Fatalf("first call: exit %d, stderr %q", first.code, w.redact(first.stderr))
	}
	issued := parseCredential(t, first.stdout)
	w.waitAccepted(t, issued.token)

	cfg := w.remoteConfig(controller, cacheDir)
	cfg.ExecProvider.Args = args
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	get := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := cs.CoreV1().ConfigMaps(teamNS).Get(ctx, "hello", metav1.GetOptions{})
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("client-go with the cached token: %v", err)
	}

	iat := issuedAt(t, issued.token)
	w.reloadAuthentication(t, jwtAuthenticator(w.broker, 0), jwtAuthenticator(long, iat))
	w.waitRefused(t, issued.token)
	time.Sleep(time.Until(time.Unix(iat+1, 0))) // a new token's iat must pass the cutoff; nothing is timed by it

	start, before := time.Now(), len(long.Requests())
	if err := get(); !apierrors.IsUnauthorized(err) {
		t.Fatalf("client-go with the refused token: %v, want 401 (client-go does not retry the request itself)", err)
	}
	if err := get(); err != nil {
		t.Fatalf("client-go after the refusal: %v; brokercred served the refused token again", err)
	}
	recovered := time.Since(start)
	if n := len(long.Requests()) - before; n != 1 {
		t.Errorf("recovering cost %d broker requests, want 1", n)
	}
	if recovered >= longTTL/2 {
		t.Errorf("recovered after %s: the refused token's own expiry, not brokercred", recovered)
	}
	t.Logf("recovered %s after the refusal, %d broker request, with tokens that live %s", recovered.Round(time.Millisecond), len(long.Requests())-before, longTTL)
}

// reloadAuthentication rewrites the remote's AuthenticationConfiguration in
// place; kube-apiserver watches the file and reloads it.
func (w *world) reloadAuthentication(t *testing.T, jwts ...map[string]any) {
	t.Helper()
	if err := os.WriteFile(w.authnFile, authenticationConfig(jwts...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitAccepted polls until the remote cluster accepts token.
func (w *world) waitAccepted(t *testing.T, token string) {
	t.Helper()
	w.waitAuthn(t, token, func(err error) bool { return err == nil }, "accept")
}

// waitRefused polls until the remote cluster answers token with 401.
func (w *world) waitRefused(t *testing.T, token string) {
	t.Helper()
	w.waitAuthn(t, token, apierrors.IsUnauthorized, "refuse")
}

// waitAuthn polls whoAmI with token until done says so, for at most the
// reload interval of the authentication config file (a minute) and more.
func (w *world) waitAuthn(t *testing.T, token string, done func(error) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := whoAmI(w.remote, token)
		if done(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the remote cluster did not %s the token within 90 s of the config change: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// issuedAt is the iat claim of a JWT, unverified.
func issuedAt(t *testing.T, token string) int64 {
	t.Helper()
	parts := strings.Split(token, ".")
	var claims struct {
		IAT int64 `json:"iat"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[min(1, len(parts)-1)])
	if err == nil {
		err = json.Unmarshal(payload, &claims)
	}
	if err != nil || claims.IAT == 0 {
		t.Fatalf("the broker's token has no readable iat claim (%v)", err)
	}
	return claims.IAT
}
