package install_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/install"
)

// helperEnv makes the test binary, once installed, prove it runs and exit.
const helperEnv = "BROKERCRED_INSTALL_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Stdout.WriteString("installed copy runs\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFile(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // prepares dir before the install
	}{
		{name: "fresh dir", setup: func(*testing.T, string) {}},
		{name: "over an existing binary", setup: func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, install.FileName()), "old binary", 0o700)
		}},
		{name: "twice in a row", setup: func(t *testing.T, dir string) {
			if _, err := install.File(self, dir); err != nil {
				t.Fatalf("first install: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			got, err := install.File(self, dir)
			if err != nil {
				t.Fatalf("File: %v", err)
			}
			if want := filepath.Join(dir, install.FileName()); got != want {
				t.Errorf("installed path = %s, want %s", got, want)
			}
			assertSameContent(t, self, got)
			assertMode(t, got)
			assertOnlyFile(t, dir, install.FileName())
			assertRuns(t, got)
		})
	}
}

func TestFileErrors(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	regular := filepath.Join(base, "regular-file")
	writeFile(t, regular, "not a dir", 0o600)
	tests := []struct {
		name       string
		dir        string
		wantSubstr string
	}{
		{name: "missing dir", dir: filepath.Join(base, "missing"), wantSubstr: "does not exist; create it, or mount the shared emptyDir"},
		{name: "dir is a file", dir: regular, wantSubstr: "is a file, not a directory"},
		{name: "dir under a file", dir: filepath.Join(regular, "sub"), wantSubstr: "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := install.File(self, tc.dir)
			assertOneLineError(t, err, tc.dir, tc.wantSubstr)
		})
	}
	t.Run("missing source", func(t *testing.T) {
		dir := t.TempDir()
		_, err := install.File(filepath.Join(base, "no-such-binary"), dir)
		if err == nil {
			t.Fatal("File succeeded with a missing source")
		}
		assertOnlyFile(t, dir, "")
	})
}

func TestFileReadOnlyDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("a directory's mode does not stop writes on Windows")
	}
	if os.Geteuid() == 0 {
		t.Skip("running as root: a chmod 0555 dir does not stop root's writes (the dir-under-a-file case covers a failing write)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	_, err = install.File(self, dir)
	assertOneLineError(t, err, dir, "is not writable by this user")
	assertOnlyFile(t, dir, "")
}

func TestSelf(t *testing.T) {
	dir := t.TempDir()
	got, err := install.Self(dir)
	if err != nil {
		t.Fatalf("Self: %v", err)
	}
	assertRuns(t, got)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func assertSameContent(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from %s (%d bytes, want %d)", got, want, len(b), len(a))
	}
}

func assertMode(t *testing.T, path string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != install.Mode {
		t.Errorf("mode of %s = %v, want %v", path, got, install.Mode)
	}
}

// assertOnlyFile checks dir holds exactly name (nothing when name is empty):
// no temporary file is left behind.
func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{}
	if name != "" {
		want = []string{name}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

func assertRuns(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run installed %s: %v\n%s", path, err, out)
	}
	if string(out) != "installed copy runs\n" {
		t.Errorf("installed copy printed %q", out)
	}
}

func assertOneLineError(t *testing.T, err error, dir, wantSubstr string) {
	t.Helper()
	if err == nil {
		t.Fatal("File succeeded, want an error")
	}
	msg := err.Error()
	if !strings.Contains(msg, wantSubstr) || !strings.Contains(msg, dir) {
		t.Errorf("error = %q, want it to name %s and contain %q", msg, dir, wantSubstr)
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans several lines: %q", msg)
	}
}
