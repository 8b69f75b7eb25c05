package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// TestPrintTokenIsTheCachedToken: print-token prints the bare token and a
// newline, taken from the broker once and from the cache after that, the
// same entry the exec path serves.
func TestPrintTokenIsTheCachedToken(t *testing.T) {
	f := newFixture(t)
	first := f.call(t, "print-token")
	second := f.call(t, "print-token")
	cred := parseCredential(t, f.call(t, "token").Stdout)
	for i, r := range []testkit.Result{first, second} {
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("print-token #%d: exit code %d, stderr:\n%s", i+1, r.Code, redact(r.Stderr))
		}
	}
	issued := f.Broker.Issued()
	if len(issued) != 1 {
		t.Fatalf("three calls made %d broker requests, want 1", len(issued))
	}
	for i, r := range []testkit.Result{first, second} {
		if r.Stdout != issued[0]+"\n" {
			t.Errorf("print-token #%d did not print exactly the issued token and a newline (%d bytes)", i+1, len(r.Stdout))
		}
	}
	if cred.Status.Token != issued[0] {
		t.Error("the exec path served another token than print-token")
	}
}

// TestRunGivesTheTokenOnlyToTheCommandsEnvironment: run starts the command
// with the token in the variable --env names; it is not in the command's
// arguments nor in anything brokercred prints, the command's exit code is
// run's, and a second run inside the token's life asks the broker nothing.
func TestRunGivesTheTokenOnlyToTheCommandsEnvironment(t *testing.T) {
	f := newFixture(t)
	// The child prints a hash of the variable, its own argv and then
	// exits 7, so the test sees all three without the token on any stream.
	script := `printf '%s' "$CI_TOKEN" | sha256sum | cut -c1-64; tr '\0' ' ' </proc/$$/cmdline; echo; exit 7`
	var runs []testkit.Result
	for range 2 {
		runs = append(runs, f.run(t, append(append([]string{"run", "-v", "--env", "CI_TOKEN"}, f.flags()...), "--", "sh", "-c", script, "child-argv")...))
	}
	issued := f.Broker.Issued()
	if len(issued) != 1 {
		t.Fatalf("two runs made %d broker requests, want 1", len(issued))
	}
	sum := sha256.Sum256([]byte(issued[0]))
	for i, r := range runs {
		if r.Code != 7 {
			t.Errorf("run #%d exited %d, want the command's 7; stderr:\n%s", i+1, r.Code, redact(r.Stderr))
		}
		lines := strings.Split(r.Stdout, "\n")
		if lines[0] != hex.EncodeToString(sum[:]) {
			t.Errorf("run #%d: the command's CI_TOKEN is not the issued token", i+1)
		}
		if len(lines) < 2 || !strings.Contains(lines[1], "child-argv") {
			t.Errorf("run #%d: the command did not print its argv", i+1)
		}
		brokertest.NoLeak(t, "run's command output (argv included)", r.Stdout, f.secrets()...)
		brokertest.NoLeak(t, "run -v's stderr", r.Stderr, f.secrets()...)
	}
}

// TestRunRefusesBadInvocations: each mistake is one line on stderr, exit 1,
// and no broker request is wasted on a command that cannot run.
func TestRunRefusesBadInvocations(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail []string
		want string
	}{
		{"no command", nil, "no command to run"},
		{"bad variable name", []string{"--env", "ARGOCD-TOKEN", "--", "true"}, `--env "ARGOCD-TOKEN" is not an environment variable name`},
		{"unknown command", []string{"--", "brokercred-no-such-command"}, `cannot run "brokercred-no-such-command"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r := f.run(t, append(append([]string{"run"}, f.flags()...), tc.tail...)...)
			assertOneErrorLine(t, r, tc.want)
			if n := len(f.Broker.Requests()); n != 0 {
				t.Errorf("made %d broker requests for a command that cannot run, want 0", n)
			}
		})
	}
}
