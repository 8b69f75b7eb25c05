package credential

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/plugin"
)

const subject = "system:serviceaccount:argocd:argocd-application-controller"

func TestReportedExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		life   time.Duration
		margin time.Duration
		want   time.Duration // after now
	}{
		{"minute token, 10s margin", time.Minute, 10 * time.Second, 50 * time.Second},
		{"exactly twice the margin", 20 * time.Second, 10 * time.Second, 10 * time.Second},
		{"shorter than twice the margin: half its life", 5 * time.Second, 10 * time.Second, 2500 * time.Millisecond},
		{"zero margin", time.Minute, 0, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := reportedExpiry(now, now.Add(tc.life), tc.margin); !got.Equal(now.Add(tc.want)) {
				t.Errorf("reportedExpiry = now+%v, want now+%v", got.Sub(now), tc.want)
			}
		})
	}
}

// fixture is a fake broker, a pod token file and options pointing at both.
type fixture struct {
	broker *brokertest.Server
	opts   Options
	pod    string
}

func newFixture(t testing.TB, bo brokertest.Options) fixture {
	t.Helper()
	b := brokertest.NewServer(bo)
	t.Cleanup(b.Close)
	dir := t.TempDir()
	pod := brokertest.PodToken(subject, time.Now().Add(time.Hour))
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(pod+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fixture{broker: b, pod: pod, opts: Options{
		BrokerURL: b.URL, Target: "dev", TokenFile: tokenFile, CAFile: b.CAFile(dir),
		Timeout: 10 * time.Second, RefreshMargin: 10 * time.Second, DefaultTTL: time.Minute, MaxTTL: 24 * time.Hour,
		CacheDir: filepath.Join(dir, "cache"),
	}}
}

type credential struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Token               string    `json:"token"`
		ExpirationTimestamp time.Time `json:"expirationTimestamp"`
	} `json:"status"`
}

func run(t *testing.T, o Options, env Env) (credential, error) {
	t.Helper()
	var out bytes.Buffer
	env.Stdout = &out
	if err := Run(context.Background(), o, env); err != nil {
		if out.Len() != 0 {
			t.Errorf("stdout holds %d bytes after a failure, want none", out.Len())
		}
		return credential{}, err
	}
	var c credential
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		t.Fatalf("stdout is not an ExecCredential: %v", err)
	}
	return c, nil
}

func TestRunServesFromCacheUntilRefreshMargin(t *testing.T) {
	f := newFixture(t, brokertest.Options{TTL: time.Minute})
	now := time.Now()
	clock := func() time.Time { return now }
	first, err := run(t, f.opts, Env{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if first.APIVersion != plugin.APIVersionV1 || first.Kind != "ExecCredential" {
		t.Errorf("got %s %s, want v1 ExecCredential", first.APIVersion, first.Kind)
	}
	if err := f.broker.Verify(first.Status.Token, "dev", now); err != nil {
		t.Errorf("served token does not verify: %v", err)
	}
	if d := first.Status.ExpirationTimestamp.Sub(now); d < 48*time.Second || d > 51*time.Second {
		t.Errorf("expirationTimestamp is now+%v, want about now+50s (60s token - 10s margin)", d)
	}

	now = now.Add(40 * time.Second) // still before expiry - margin
	second, err := run(t, f.opts, Env{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if second.Status.Token != first.Status.Token || len(f.broker.Requests()) != 1 {
		t.Errorf("second call: broker requests = %d, same token = %v; want 1 request and the cached token",
			len(f.broker.Requests()), second.Status.Token == first.Status.Token)
	}

	now = now.Add(15 * time.Second) // inside the margin: refetch
	if _, err := run(t, f.opts, Env{Now: clock}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.broker.Requests()); n != 2 {
		t.Errorf("after the margin: broker requests = %d, want 2", n)
	}
}

func TestRunKeysCacheByIdentityTargetAndServer(t *testing.T) {
	f := newFixture(t, brokertest.Options{})
	other := f.opts
	other.TokenFile = filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other.TokenFile, []byte(brokertest.PodToken("system:serviceaccount:argocd:argocd-server", time.Now().Add(time.Hour))), 0o600); err != nil {
		t.Fatal(err)
	}
	otherTarget := f.opts
	otherTarget.Target = "prod"
	v1Info := `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"cluster":{"server":"https://east:6443"}}}`
	for _, step := range []struct {
		name string
		opts Options
		info string
		want int
	}{
		{"first identity", f.opts, "", 1},
		{"first identity again", f.opts, "", 1},
		{"second identity", other, "", 2},
		{"other target", otherTarget, "", 3},
		{"same target on another server", f.opts, v1Info, 4},
		{"that server again", f.opts, v1Info, 4},
	} {
		if _, err := run(t, step.opts, Env{ExecInfo: step.info}); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if n := len(f.broker.Requests()); n != step.want {
			t.Errorf("%s: broker requests = %d, want %d", step.name, n, step.want)
		}
	}
	subjects := map[string]bool{}
	for _, r := range f.broker.Requests() {
		subjects[r.Subject] = true
	}
	if !subjects["system:serviceaccount:argocd:argocd-server"] || !subjects[subject] {
		t.Errorf("broker saw subjects %v, want both identities", subjects)
	}
}

func TestRunWorksWithoutUsableCache(t *testing.T) {
	f := newFixture(t, brokertest.Options{})
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.opts.CacheDir = filepath.Join(blocker, "cache") // cannot be created
	var logs bytes.Buffer
	for i := 0; i < 2; i++ {
		if _, err := run(t, f.opts, Env{Log: textLogger(&logs)}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := len(f.broker.Requests()); n != 2 {
		t.Errorf("broker requests = %d, want 2 (no cache)", n)
	}
	if !strings.Contains(logs.String(), "cache unusable") {
		t.Errorf("verbose log does not say why the cache is off:\n%s", logs.String())
	}
	brokertest.NoLeak(t, "log", logs.String(), f.pod)
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(t *testing.T, o *Options)
		bo      brokertest.Options
		wantErr string
	}{
		{name: "missing pod token", mutate: func(_ *testing.T, o *Options) { o.TokenFile = "/nonexistent/token" },
			wantErr: "read pod token /nonexistent/token: no such file; is automountServiceAccountToken off?"},
		{name: "empty pod token", mutate: func(t *testing.T, o *Options) { writeFile(t, o.TokenFile, " \n") },
			wantErr: "is empty; check the projected ServiceAccount token volume"},
		{name: "expired pod token", mutate: func(t *testing.T, o *Options) {
			writeFile(t, o.TokenFile, brokertest.PodToken(subject, time.Now().Add(-time.Minute)))
		}, wantErr: "expired at"},
		{name: "no target", mutate: func(_ *testing.T, o *Options) { o.Target = "" }, wantErr: "no target cluster; set --target"},
		{name: "refused", bo: brokertest.Options{Allow: []string{"nobody"}}, wantErr: "broker refused the identity \"" + subject + "\""},
		{name: "issued token already expired", bo: brokertest.Options{TTL: -time.Minute}, wantErr: "broker issued a token for target \"dev\" that expired at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.bo)
			if tc.mutate != nil {
				tc.mutate(t, &f.opts)
			}
			_, err := run(t, f.opts, Env{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			brokertest.NoLeak(t, "error", err.Error(), f.pod)
			if entries, _ := filepath.Glob(filepath.Join(f.opts.CacheDir, "*", "*.json")); len(entries) != 0 {
				t.Errorf("a failed call left %d cache entries", len(entries))
			}
		})
	}
}

func TestRunDefaultTTLWhenNothingSaysExpiry(t *testing.T) {
	f := newFixture(t, brokertest.Options{NoExp: true})
	f.opts.DefaultTTL = 30 * time.Second
	now := time.Now()
	c, err := run(t, f.opts, Env{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Status.ExpirationTimestamp.Sub(now); d < 19*time.Second || d > 21*time.Second {
		t.Errorf("expirationTimestamp = now+%v, want now+20s (30s default TTL - 10s margin)", d)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func textLogger(w *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
