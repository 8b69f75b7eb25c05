//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cacheDirFaults are what goes wrong in the cache directory: entries that
// are corrupt, old, loose, foreign, planted or not files at all, locks held
// by the dead or the stuck, a full disk, a read-only or shared directory.
func cacheDirFaults() []faultCase {
	return []faultCase{
		{
			name: "corrupt entry",
			setup: func(t *testing.T, f *fixture) {
				if err := os.WriteFile(f.prime(t), []byte("\x00\x01 not json"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "truncated entry holding a whole token",
			setup: func(t *testing.T, f *fixture) {
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				data := mustRead(t, path)
				if err := os.WriteFile(path, data[:len(data)-1], 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "entry in an older format",
			setup: func(t *testing.T, f *fixture) {
				f.plantPoison(t, f.prime(t), func(e map[string]any) { e["version"] = 0 })
			},
			wantRequests: 2,
		},
		{
			name: "entry readable by others",
			setup: func(t *testing.T, f *fixture) {
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				if err := os.Chmod(path, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "entry owned by another user",
			setup: func(t *testing.T, f *fixture) {
				if os.Geteuid() != 0 {
					t.Skip("only root can give a file to another user")
				}
				path := f.prime(t)
				f.plantPoison(t, path, nil)
				if err := os.Chown(path, nobody, nobody); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "cache dir with missing parents",
			setup: func(t *testing.T, f *fixture) {
				f.cacheDir = filepath.Join(t.TempDir(), "home", "argocd", ".cache", "brokercred")
			},
			wantRequests: 1,
			check: func(t *testing.T, f *fixture, _, _ time.Time, _ execCredential) {
				info, err := os.Stat(f.cacheDir)
				if err != nil || info.Mode().Perm() != 0o700 {
					t.Errorf("cache dir: %v, %v; want mode 0700", info.Mode(), err)
				}
			},
		},
		{
			name: "lock held by a killed process",
			setup: func(t *testing.T, f *fixture) {
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				lock := strings.TrimSuffix(entry, ".json") + ".lock"
				holder := holdLock(t, lock)
				if !lockHeld(t, lock) {
					t.Fatal("the sleep child does not hold the lock")
				}
				if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = holder.Wait()
			},
			wantRequests: 2,
		},
		{
			name: "lock held by a stuck process",
			setup: func(t *testing.T, f *fixture) {
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				lock := strings.TrimSuffix(entry, ".json") + ".lock"
				holder := holdLock(t, lock)
				f.heal = append(f.heal, func() { _ = holder.Process.Kill(); _ = holder.Wait() })
			},
			args:         []string{"--timeout", "2s"},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "disk full",
			setup: func(t *testing.T, f *fixture) {
				// RLIMIT_FSIZE 0: every write that grows a file fails with
				// EFBIG (Go ignores SIGXFSZ), as on a full disk.
				f.wrap = []string{"/bin/sh", "-c", `ulimit -f 0 && exec "$0" "$@"`}
			},
			wantRequests: 1,
			uncached:     true,
		},
		{
			name:         "cache dir read-only",
			unprivileged: true,
			setup: func(t *testing.T, f *fixture) {
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				private := filepath.Dir(entry) // the user's own subdirectory
				if err := os.Chmod(private, 0o500); err != nil {
					t.Fatal(err)
				}
				f.heal = append(f.heal, func() { _ = os.Chmod(private, 0o700) })
			},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "FIFO as the entry in a shared cache dir",
			setup: func(t *testing.T, f *fixture) {
				f.shareCacheDir(t)
				entry := f.prime(t)
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(entry, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			args:         []string{"--timeout", "3s"},
			wantRequests: 2,
			check: func(t *testing.T, _ *fixture, start, end time.Time, _ execCredential) {
				if took := end.Sub(start); took >= 3*time.Second {
					t.Errorf("the call took %v, not within --timeout 3s: the FIFO held it", took)
				}
			},
		},
		{
			name: "symbolic link as the entry in a shared cache dir",
			setup: func(t *testing.T, f *fixture) {
				f.shareCacheDir(t)
				entry := f.prime(t)
				elsewhere := filepath.Join(t.TempDir(), filepath.Base(entry))
				if err := os.Rename(entry, elsewhere); err != nil {
					t.Fatal(err)
				}
				f.plantPoison(t, elsewhere, nil)
				if err := os.Symlink(elsewhere, entry); err != nil {
					t.Fatal(err)
				}
			},
			wantRequests: 2,
		},
		{
			name: "entry owned by another user in a shared cache dir",
			setup: func(t *testing.T, f *fixture) {
				f.shareCacheDir(t)
				entry := f.prime(t)
				f.plantPoison(t, entry, nil)
				plantAsNobody(t, entry)
			},
			wantRequests: 2,
		},
		{
			name: "private subdirectory made by another user",
			setup: func(t *testing.T, f *fixture) {
				sub, entry := f.shareAfterPriming(t)
				if err := os.Mkdir(sub, 0o700); err != nil {
					t.Fatal(err)
				}
				plantAsNobody(t, sub, moveInto(t, entry, sub))
			},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "private subdirectory open to everyone",
			setup: func(t *testing.T, f *fixture) {
				sub, entry := f.shareAfterPriming(t)
				if err := os.Mkdir(sub, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(sub, 0o777); err != nil {
					t.Fatal(err)
				}
				plantAsNobody(t, moveInto(t, entry, sub))
			},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "private subdirectory is a link to another user's dir",
			setup: func(t *testing.T, f *fixture) {
				sub, entry := f.shareAfterPriming(t)
				theirs := filepath.Join(f.cacheDir, "theirs")
				if err := os.Mkdir(theirs, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(theirs, 0o777); err != nil {
					t.Fatal(err)
				}
				planted := moveInto(t, entry, theirs)
				if err := os.Symlink(theirs, sub); err != nil {
					t.Fatal(err)
				}
				plantAsNobody(t, theirs, planted, sub)
			},
			wantRequests: 2,
			uncached:     true,
		},
		{
			name: "cache dir holding files brokercred did not write",
			setup: func(t *testing.T, f *fixture) {
				entry := f.prime(t)
				for _, path := range decoys(f.cacheDir, filepath.Dir(entry)) {
					if filepath.Base(path) != foreignEntry {
						if err := os.WriteFile(path, []byte(`{"name":"not brokercred's"}`), 0o600); err != nil {
							t.Fatal(err)
						}
						continue
					}
					// Named like an entry, and one in every field, but
					// another user's.
					if err := os.WriteFile(path, mustRead(t, entry), 0o600); err != nil {
						t.Fatal(err)
					}
					f.plantPoison(t, path, func(e map[string]any) { e["name"] = strings.TrimSuffix(foreignEntry, ".json") })
					plantAsNobody(t, path)
				}
			},
			wantRequests: 1,
			then: func(t *testing.T, f *fixture) {
				entries := cacheEntries(t, f)
				if len(entries) != 1 {
					t.Fatalf("cache holds entries %v before the clear, want exactly one", entries)
				}
				r := f.run(t, "cache", "clear", "--cache-dir", f.cacheDir)
				if r.Code != 0 || r.Stderr != "removed 1 cache entries\n" {
					t.Errorf("cache clear: exit code %d, stderr:\n%s", r.Code, redact(r.Stderr))
				}
				for _, path := range entries {
					if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("cache clear left brokercred's entry %s (%v)", filepath.Base(path), err)
					}
				}
				for _, path := range decoys(f.cacheDir, filepath.Dir(entries[0])) {
					if _, err := os.Lstat(path); err != nil {
						t.Errorf("cache clear removed %s, which brokercred did not write: %v", path, err)
					}
				}
			},
		},
	}
}

// plantPoison rewrites the cached entry at path to hold a token the broker
// really issued for this target and subject, valid for an hour, after edit
// has changed the entry's fields. The entry is untrustworthy, so the token
// must never be served, although it would work.
func (f *fixture) plantPoison(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(mustRead(t, path), &e); err != nil {
		t.Fatal(err)
	}
	poison := f.Broker.Issue(f.target, podSubject, time.Now().Add(time.Hour))
	f.planted = append(f.planted, poison)
	e["token"] = poison
	if edit != nil {
		edit(e)
	}
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// holdLock takes an exclusive flock on path and hands it to a `sleep`
// child, then drops this process's own descriptor: only the child holds the
// lock, as a brokercred process stuck or killed under the lock would.
func holdLock(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("take lock: %v", err)
	}
	cmd := exec.Command("sleep", "600")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lock holder: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// lockHeld reports whether someone holds an exclusive flock on path.
func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true
	}
	if err != nil {
		t.Fatalf("probe lock: %v", err)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// shareCacheDir moves f's cache into a new directory anyone may write to,
// as a Kubernetes emptyDir is.
func (f *fixture) shareCacheDir(t *testing.T) {
	t.Helper()
	f.cacheDir = filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(f.cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f.cacheDir, 0o777); err != nil {
		t.Fatal(err)
	}
}

// shareAfterPriming primes f's cache, takes its entry out, poisoned, and
// moves f's cache to a new shared directory. It returns where brokercred's
// private subdirectory belongs in that directory, and the poisoned entry,
// for a case to plant there as another user would.
func (f *fixture) shareAfterPriming(t *testing.T) (sub, entry string) {
	t.Helper()
	primed := f.prime(t)
	entry = filepath.Join(t.TempDir(), filepath.Base(primed))
	if err := os.Rename(primed, entry); err != nil {
		t.Fatal(err)
	}
	f.plantPoison(t, entry, nil)
	f.shareCacheDir(t)
	return filepath.Join(f.cacheDir, filepath.Base(filepath.Dir(primed))), entry
}

// moveInto moves the file at path into dir and returns its new path.
func moveInto(t *testing.T, path, dir string) string {
	t.Helper()
	moved := filepath.Join(dir, filepath.Base(path))
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	return moved
}

// plantAsNobody gives the files at paths (links themselves, not what they
// point at) to nobody, as if nobody had planted them. Only root can.
func plantAsNobody(t *testing.T, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file to another user")
	}
	for _, path := range paths {
		if err := os.Lchown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
}

// foreignEntry is the name of a file another user planted, named like a
// cache entry.
const foreignEntry = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.json"

// decoys are files brokercred did not write, in the shared cache dir and in
// its private subdirectory sub: other programs' JSON, and foreignEntry.
func decoys(dir, sub string) []string {
	var paths []string
	for _, d := range []string{dir, sub} {
		for _, name := range []string{"package.json", "notes.json", foreignEntry} {
			paths = append(paths, filepath.Join(d, name))
		}
	}
	return paths
}
