package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/brokercred/brokercred/e2e/kube/kubeworld"
	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// TestRemoteCluster runs the whole scenario once per kube-apiserver version,
// each on its own set of servers: the quick checks first, then the two that
// wait for tokens to expire, side by side.
func TestRemoteCluster(t *testing.T) {
	needComponents(t)
	for _, version := range testkit.SortedNames(kubeAPIServers) {
		t.Run(version, func(t *testing.T) {
			w := setUp(t, kubeAPIServers[version])
			t.Run("kubectl", w.testKubectl)
			t.Run("refused identity", w.testRefused)
			t.Run("expiry", func(t *testing.T) {
				t.Run("long-running client", w.testLongRunningClient)
				t.Run("revocation", w.testRevocation)
			})
			t.Run("refused token", w.testRefusedToken)
		})
	}
}

// testKubectl: kubectl through the exec entry reads what RBAC allows the
// broker identity and is Forbidden the rest.
func (w *world) testKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KUBECONFIG=" + w.kubeconfig(t, controller, t.TempDir())}
	run := func(args ...string) result {
		r := runCmd(t, env, append([]string{kubectl}, args...)...)
		w.noTokenIn(t, "kubectl "+strings.Join(args, " ")+" output", r.stdout+r.stderr)
		return r
	}
	user := usernamePrefix + subject(controller)
	for _, c := range []struct{ args []string }{
		{[]string{"get", "configmap", "hello", "-n", teamNS, "-o", "jsonpath={.data.greeting}"}},
		{[]string{"auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"}},
	} {
		r := run(c.args...)
		if r.code != 0 || (r.stdout != greeting && r.stdout != user) {
			t.Errorf("kubectl %s: exit %d, stdout %q, stderr %q", strings.Join(c.args, " "), r.code, w.redact(r.stdout), w.redact(r.stderr))
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "secrets", "-n", teamNS}, `cannot list resource "secrets" in API group "" in the namespace "team-a"`},
		{[]string{"get", "configmaps", "-n", "default"}, `cannot list resource "configmaps" in API group "" in the namespace "default"`},
		{[]string{"delete", "configmap", "hello", "-n", teamNS}, `cannot delete resource "configmaps" in API group "" in the namespace "team-a"`},
	} {
		r := run(c.args...)
		want := `(Forbidden)`
		if r.code == 0 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, `User "`+user+`" `+c.want) {
			t.Errorf("kubectl %s: exit %d, stderr %q, want Forbidden: User %q %s", strings.Join(c.args, " "), r.code, w.redact(r.stderr), user, c.want)
		}
	}
}

// testRefused: a ServiceAccount outside the allow rule, and a pod token the
// control plane never issued, get one clear line and no token.
func (w *world) testRefused(t *testing.T) {
	forged := kubeworld.WriteFile(t, t.TempDir(), "forged.token", []byte(brokertest.PodToken(subject(controller), time.Now().Add(time.Hour))))
	for _, c := range []struct {
		name, tokenFile, want string
	}{
		{"not allowed", w.tokenFiles[repoServer], fmt.Sprintf("broker refused the identity %q for target %q (HTTP 403)", subject(repoServer), target)},
		{"not issued by the control plane", forged, fmt.Sprintf("broker refused the identity %q for target %q (HTTP 401)", subject(controller), target)},
	} {
		t.Run(c.name, func(t *testing.T) {
			issued := len(w.broker.Issued())
			r := runBrokercred(t, w.pluginArgs(c.tokenFile, t.TempDir()))
			if r.code != 1 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q; want exit 1 and nothing on stdout", r.code, w.redact(r.stdout))
			}
			w.oneLine(t, r.stderr, c.want)
			if n := len(w.broker.Issued()); n != issued {
				t.Errorf("the broker minted %d tokens for a refused caller", n-issued)
			}
		})
	}
}

// testLongRunningClient: one client-go clientset keeps working across at
// least three token expiries, asking the broker about once per usable token
// lifetime (half the 15 s life: brokercred reports expiry at
// min(--refresh-margin, life/2) before the real one).
func (w *world) testLongRunningClient(t *testing.T) {
	t.Parallel()
	cs, err := kubernetes.NewForConfig(w.remoteConfig(controller, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	before := w.fetches(subject(controller))
	start := time.Now()
	calls := 0
	for time.Since(start) < 3*tokenTTL+5*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cm, err := cs.CoreV1().ConfigMaps(teamNS).Get(ctx, "hello", metav1.GetOptions{})
		cancel()
		if err != nil {
			t.Fatalf("call %d, %s into the run: %v", calls+1, time.Since(start).Round(time.Millisecond), err)
		}
		if cm.Data["greeting"] != greeting {
			t.Fatalf("call %d read %q", calls+1, cm.Data["greeting"])
		}
		calls++
		time.Sleep(200 * time.Millisecond) // pace the calls; nothing is timed by it
	}
	elapsed := time.Since(start)
	fetches := w.fetches(subject(controller)) - before
	// One fetch at the start, then one per usable lifetime: half the TTL, or
	// a little less, because exp has whole seconds (7 to 7.5 s here).
	usable := tokenTTL / 2
	low, high := int(elapsed/usable), int(elapsed/(usable-time.Second))+2
	t.Logf("%d calls in %s, %d broker fetches (about %.1f expected)", calls, elapsed.Round(time.Millisecond), fetches, 1+elapsed.Seconds()/usable.Seconds())
	if fetches < low || fetches > high {
		t.Errorf("%d broker fetches in %s of calls, want %d to %d (one per usable token lifetime of about %s)", fetches, elapsed.Round(time.Millisecond), low, high, usable)
	}
}

// testRevocation: once the ServiceAccount is deleted in the control plane,
// the broker's TokenReview fails; brokercred serves its cached token until
// the reported expiry and never after, then fails with one line, and the
// remote cluster is out of reach.
func (w *world) testRevocation(t *testing.T) {
	t.Parallel()
	cacheDir := t.TempDir()
	args := w.pluginArgs(w.tokenFiles[server], cacheDir)
	first := runBrokercred(t, args)
	if first.code != 0 {
		t.Fatalf("first call: exit %d, stderr %q", first.code, w.redact(first.stderr))
	}
	cred := parseCredential(t, first.stdout)
	if got, err := whoAmI(w.remote, cred.token); err != nil || got != usernamePrefix+subject(server) {
		t.Fatalf("the remote cluster sees the broker token as %q (%v), want %q", got, err, usernamePrefix+subject(server))
	}
	w.revoke(t, server)
	refused := w.pollUntilRefused(t, args, cred)
	w.oneLine(t, refused.stderr, fmt.Sprintf("broker refused the identity %q for target %q (HTTP 401)", subject(server), target))

	cs, err := kubernetes.NewForConfig(w.remoteConfig(server, cacheDir))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ConfigMaps(teamNS).Get(context.Background(), "hello", metav1.GetOptions{})
	if err == nil || !strings.Contains(err.Error(), "getting credentials") {
		t.Errorf("client-go after revocation: %v; want a getting credentials error", err)
	}
	w.waitRejected(t, cred)
}

// revoke deletes ServiceAccount sa and waits until the control plane no
// longer authenticates its pod token.
func (w *world) revoke(t *testing.T, sa string) {
	t.Helper()
	if err := w.control.Client.CoreV1().ServiceAccounts(argocdNS).Delete(context.Background(), sa, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(w.tokenFiles[sa])
	if err != nil {
		t.Fatal(err)
	}
	review := brokertest.TokenReview(w.control.AdminHTTP, w.control.URL, audience)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := review(string(token))
		if errors.Is(err, brokertest.ErrNotAuthenticated) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the control plane still reviews the deleted %s's token: %v", sa, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// pollUntilRefused runs brokercred until it fails: before the cached
// credential's reported expiry it must serve that credential, and a run
// starting a second or more after it (the timestamp has whole seconds) must
// not succeed.
func (w *world) pollUntilRefused(t *testing.T, args []string, cached credential) result {
	t.Helper()
	deadline := cached.expiry.Add(tokenTTL)
	for {
		started := time.Now()
		r := runBrokercred(t, args)
		switch {
		case r.code != 0 && started.Before(cached.expiry):
			t.Errorf("brokercred failed at %s, before its cached token's reported expiry %s: %q", started.Format(time.RFC3339Nano), cached.expiry.Format(time.RFC3339), w.redact(r.stderr))
			return r
		case r.code != 0:
			return r
		case !started.Before(cached.expiry.Add(time.Second)):
			t.Fatalf("brokercred served a token at %s, past the cached token's reported expiry %s", started.Format(time.RFC3339Nano), cached.expiry.Format(time.RFC3339))
		}
		if got := parseCredential(t, r.stdout); got.token != cached.token || !got.expiry.Equal(cached.expiry) {
			t.Fatalf("after revocation brokercred served a credential other than the cached one (expiry %s, cached %s)", got.expiry, cached.expiry)
		}
		if time.Now().After(deadline) {
			t.Fatal("brokercred kept succeeding after the revocation")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitRejected waits until the remote cluster turns the last broker token
// away as it expires.
func (w *world) waitRejected(t *testing.T, cred credential) {
	t.Helper()
	deadline := cred.expiry.Add(tokenTTL)
	for {
		_, err := whoAmI(w.remote, cred.token)
		if apierrors.IsUnauthorized(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the remote cluster still accepts the revoked identity's last token after %s: %v", deadline.Format(time.RFC3339), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
