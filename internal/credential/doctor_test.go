package credential

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

func TestDoctor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		bo         brokertest.Options
		mutate     func(t *testing.T, f *fixture)
		wantFailed string // the one check that fails; "" when healthy
		wantDetail string
		wantSkip   []string
	}{
		{name: "healthy", wantDetail: "broker issued a token for dev"},
		{name: "pod token missing", mutate: func(_ *testing.T, f *fixture) { f.opts.TokenFile = "/nonexistent/token" },
			wantFailed: "pod token", wantDetail: "no such file", wantSkip: []string{"cache", "token request"}},
		{name: "http broker", mutate: func(_ *testing.T, f *fixture) {
			f.opts.BrokerURL = strings.Replace(f.opts.BrokerURL, "https://", "http://", 1)
		}, wantFailed: "broker URL", wantDetail: "plain http", wantSkip: []string{"token request"}},
		{name: "broker unreachable", mutate: func(_ *testing.T, f *fixture) { f.broker.Close() },
			wantFailed: "broker TCP", wantDetail: "cannot connect to", wantSkip: []string{"token request"}},
		{name: "broker CA not trusted", mutate: func(_ *testing.T, f *fixture) { f.opts.CAFile = "" },
			wantFailed: "broker TLS", wantDetail: "unknown authority; set --ca-file", wantSkip: []string{"token request"}},
		{name: "wrong path", mutate: func(_ *testing.T, f *fixture) { f.opts.BrokerURL += "-typo" },
			wantFailed: "broker HTTP", wantDetail: "no such endpoint (HTTP 404)", wantSkip: []string{"token request"}},
		{name: "cache dir not writable", mutate: func(t *testing.T, f *fixture) {
			file := filepath.Join(t.TempDir(), "file")
			writeFile(t, file, "")
			f.opts.CacheDir = filepath.Join(file, "cache")
		}, wantFailed: "cache", wantDetail: "cache dir is not usable"},
		{name: "identity refused", bo: brokertest.Options{Allow: []string{"nobody"}},
			wantFailed: "token request", wantDetail: "broker refused the identity \"" + subject + "\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.bo)
			if tc.mutate != nil {
				tc.mutate(t, &f)
			}
			r := Doctor(context.Background(), f.opts, Env{})
			var out bytes.Buffer
			if err := WriteReport(&out, r, "json"); err != nil {
				t.Fatal(err)
			}
			brokertest.NoLeak(t, "doctor output", out.String(), f.pod)
			for _, issued := range issuedTokens(f) {
				brokertest.NoLeak(t, "doctor output", out.String(), issued)
			}
			if tc.wantFailed == "" && len(f.broker.Issued()) == 0 {
				t.Error("a healthy doctor run issued no token: the leak check above checked none")
			}
			assertDoctorOutcome(t, r, tc.wantFailed, tc.wantDetail, tc.wantSkip)
		})
	}
}

// issuedTokens are the secrets of the fixture's calls, for leak checks: the
// pod token and every token the fake broker actually issued.
func issuedTokens(f fixture) []string {
	return append([]string{f.pod}, f.broker.Issued()...)
}

func assertDoctorOutcome(t *testing.T, r Report, wantFailed, wantDetail string, wantSkip []string) {
	t.Helper()
	var failed, skipped []string
	found := false
	for _, c := range r.Checks {
		switch {
		case c.Skipped:
			skipped = append(skipped, c.Name)
		case !c.OK:
			failed = append(failed, c.Name)
		}
		if strings.Contains(c.Detail, wantDetail) {
			found = true
		}
		if strings.Contains(c.Detail, "\n") {
			t.Errorf("check %s spans several lines", c.Name)
		}
	}
	if got := strings.Join(failed, ","); got != wantFailed {
		t.Errorf("failed checks = %q, want %q; report: %+v", got, wantFailed, r.Checks)
	}
	if got, want := strings.Join(skipped, ","), strings.Join(wantSkip, ","); got != want {
		t.Errorf("skipped checks = %q, want %q", got, want)
	}
	if !found {
		t.Errorf("no check says %q; report: %+v", wantDetail, r.Checks)
	}
	if r.OK != (wantFailed == "") || (r.Failed() == 0) != (wantFailed == "") {
		t.Errorf("report OK = %v with %d failures, want failure %q", r.OK, r.Failed(), wantFailed)
	}
}

func TestDoctorText(t *testing.T) {
	r := Report{Checks: []Check{{Name: "pod token", OK: true, Detail: "fine"}, {Name: "broker TCP", Detail: "down; fix it"},
		{Name: "token request", Skipped: true, Detail: "skipped: x"}}}
	var out bytes.Buffer
	if err := WriteReport(&out, r, "text"); err != nil {
		t.Fatal(err)
	}
	want := "✓ pod token     fine\n✗ broker TCP    down; fix it\n- token request skipped: x\n"
	if out.String() != want {
		t.Errorf("text report:\n%s\nwant:\n%s", out.String(), want)
	}
}
