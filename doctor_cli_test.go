package main

import (
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

func TestDoctorCommand(t *testing.T) {
	f := newFixture(t)

	healthy := f.call(t, "doctor")
	if healthy.Code != 0 {
		t.Fatalf("doctor on a healthy setup exited %d; stderr: %s", healthy.Code, redact(healthy.Stderr))
	}
	if n := strings.Count(healthy.Stdout, "✓ "); n != 10 {
		t.Errorf("healthy doctor printed %d ✓ lines, want 10:\n%s", n, redact(healthy.Stdout))
	}
	brokertest.NoLeak(t, "doctor stdout", healthy.Stdout, f.podToken)

	f.tokenFile = "/nonexistent/token"
	broken := f.call(t, "doctor")
	if broken.Code == 0 {
		t.Fatal("doctor with a missing pod token exited 0")
	}
	if !strings.Contains(broken.Stdout, "✗ pod token") {
		t.Errorf("stdout does not flag the pod token:\n%s", redact(broken.Stdout))
	}
	if want := "brokercred: error: doctor found 1 problem(s); fix the ✗ lines above in order\n"; broken.Stderr != want {
		t.Errorf("stderr = %q, want %q", redact(broken.Stderr), want)
	}
}
