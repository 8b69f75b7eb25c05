package main

import (
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

func TestDoctorCommand(t *testing.T) {
	f := newFixture(t, brokertest.Options{}, podSubject)
	doctor := append([]string{"doctor"}, f.args()[1:]...)

	healthy := runBinary(t, f.env, doctor...)
	if healthy.code != 0 {
		t.Fatalf("doctor on a healthy setup exited %d; stderr: %s", healthy.code, healthy.stderr)
	}
	if n := strings.Count(healthy.stdout, "✓ "); n != 10 {
		t.Errorf("healthy doctor printed %d ✓ lines, want 10:\n%s", n, healthy.stdout)
	}
	assertNoSecret(t, "doctor stdout", healthy.stdout, f.podToken)

	f.tokenFile = "/nonexistent/token"
	broken := runBinary(t, f.env, append([]string{"doctor"}, f.args()[1:]...)...)
	if broken.code == 0 {
		t.Fatal("doctor with a missing pod token exited 0")
	}
	if !strings.Contains(broken.stdout, "✗ pod token") {
		t.Errorf("stdout does not flag the pod token:\n%s", broken.stdout)
	}
	if want := "brokercred: error: doctor found 1 problem(s); fix the ✗ lines above in order\n"; broken.stderr != want {
		t.Errorf("stderr = %q, want %q", broken.stderr, want)
	}
}
