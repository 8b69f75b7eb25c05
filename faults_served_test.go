//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// servedRecordFaults are faults of the small files that say whom a cache
// entry was served to, by which brokercred tells that client-go came back
// for a token its API server refused (issue 23).
func servedRecordFaults() []faultCase {
	return []faultCase{
		{
			// 10 calls from one client after the record said "served"
			// used to cost 10 broker requests: each replacement failed to
			// store, so the next call judged the same entry refused again.
			name:         "served records cannot be written: one caller coming back is served, not refetched",
			unprivileged: true,
			setup: func(t *testing.T, f *fixture) {
				f.env = append(f.env, execInfo("", ""))
				sub := filepath.Dir(f.prime(t))
				f.readOnly(t, sub)
				for i := range 9 {
					if r := f.call(t, "token"); r.Code != 0 {
						t.Fatalf("call %d on a read-only cache: exit code %d, stderr:\n%s", i+2, r.Code, redact(r.Stderr))
					}
				}
			},
			wantRequests: 1,
		},
		{
			name: "a FIFO at the caller's served record does not hang the call",
			setup: func(t *testing.T, f *fixture) {
				f.env = append(f.env, execInfo("", ""))
				sub := filepath.Dir(f.prime(t))
				records, _ := filepath.Glob(filepath.Join(sub, "*.served-*"))
				if len(records) != 1 {
					t.Fatalf("priming left served records %v, want one", records)
				}
				if err := os.Remove(records[0]); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(records[0], 0o600); err != nil {
					t.Fatal(err)
				}
			},
			args:         []string{"--timeout", "3s"},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, start, end time.Time, _ execCredential) {
				if end.Sub(start) > 3*time.Second {
					t.Errorf("the call took %s, beyond its --timeout of 3s", end.Sub(start).Round(time.Millisecond))
				}
			},
		},
		{
			name: "served records stay bounded however many clients ask",
			setup: func(t *testing.T, f *fixture) {
				f.env = append(f.env, execInfo("", ""))
				// Each call's parent is a shell of its own: a new client.
				f.wrap = []string{"sh", "-c", `"$@"; exit $?`, "sh"}
				sub := filepath.Dir(f.prime(t))
				for range 40 {
					if r := f.call(t, "token"); r.Code != 0 {
						t.Fatalf("exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
					}
				}
				records, _ := filepath.Glob(filepath.Join(sub, "*.served-*"))
				if len(records) > 32 {
					t.Errorf("41 clients left %d served records, want at most 32", len(records))
				}
			},
			wantRequests: 1,
		},
	}
}

// readOnly makes dir read-only for the user the fixture runs brokercred as
// until the test heals the fixture.
func (f *fixture) readOnly(t *testing.T, dir string) {
	t.Helper()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	f.heal = append(f.heal, func() { _ = os.Chmod(dir, 0o700) })
	if f.attr == nil && os.Geteuid() == 0 {
		t.Skip("root writes to a read-only directory: run the tests as root so that brokercred runs as nobody")
	}
}
