package main

import (
	"strings"
	"testing"
)

func TestDoctorCommand(t *testing.T) {
	f := newFixture(t)

	healthy := f.call(t, "doctor")
	if healthy.code != 0 {
		t.Fatalf("doctor on a healthy setup exited %d; stderr: %s", healthy.code, redact(healthy.stderr))
	}
	if n := strings.Count(healthy.stdout, "✓ "); n != 10 {
		t.Errorf("healthy doctor printed %d ✓ lines, want 10:\n%s", n, redact(healthy.stdout))
	}
	assertNoSecret(t, "doctor stdout", healthy.stdout, f.podToken)

	f.tokenFile = "/nonexistent/token"
	broken := f.call(t, "doctor")
	if broken.code == 0 {
		t.Fatal("doctor with a missing pod token exited 0")
	}
	if !strings.Contains(broken.stdout, "✗ pod token") {
		t.Errorf("stdout does not flag the pod token:\n%s", redact(broken.stdout))
	}
	if want := "brokercred: error: doctor found 1 problem(s); fix the ✗ lines above in order\n"; broken.stderr != want {
		t.Errorf("stderr = %q, want %q", redact(broken.stderr), want)
	}
}
