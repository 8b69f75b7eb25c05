package cache

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var key = Key{ID: []byte(`["https://ou.example.com/api/get-target-token","dev","https://k8s\nsystem:serviceaccount:argocd:x"]`),
	Label: Label{"target": "dev", "identity": "system:serviceaccount:argocd:x"}}

func keyFor(target string) Key {
	return Key{ID: []byte(`["https://ou.example.com/api/get-target-token","` + target + `"]`), Label: Label{"target": target}}
}

func open(t *testing.T, dir string) *Cache {
	t.Helper()
	c, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (c *Cache) entryPath(k Key) string { return filepath.Join(c.dir, k.name()+".json") }

func TestPutGet(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "cache"))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := c.Get(key, now); err == nil || err.Error() != "no entry" {
		t.Fatalf("empty cache: err = %v, want no entry", err)
	}
	if err := c.Put(key, Entry{Token: "tok", Expiry: now.Add(time.Minute), Issued: now}); err != nil {
		t.Fatal(err)
	}
	e, err := c.Get(key, now.Add(59*time.Second))
	if err != nil || e.Token != "tok" || e.Label["identity"] != key.Label["identity"] || !e.Issued.Equal(now) {
		t.Fatalf("Get = %+v, %v; want the stored entry", e, err)
	}
	if _, err := c.Get(key, now.Add(time.Minute)); err == nil || !strings.HasPrefix(err.Error(), "entry expired") {
		t.Errorf("at expiry: err = %v, want expired", err)
	}
	for _, other := range []Key{keyFor("prod"), {ID: append([]byte(nil), key.ID[:len(key.ID)-1]...)}, {ID: nil}} {
		if _, err := c.Get(other, now); err == nil || err.Error() != "no entry" {
			t.Errorf("key %q: err = %v, want no entry", other.ID, err)
		}
	}
	assertPrivate(t, c.Dir(), 0o700)
	assertPrivate(t, c.entryPath(key), 0o600)
}

func TestBadEntriesAreIgnored(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		damage     func(t *testing.T, c *Cache, path string)
		wantReason string
	}{
		{"truncated", func(t *testing.T, _ *Cache, p string) { truncate(t, p, 20) }, "entry corrupt"},
		{"garbage", func(t *testing.T, _ *Cache, p string) { write(t, p, "\x00\x01garbage") }, "entry corrupt"},
		{"older format", func(t *testing.T, _ *Cache, p string) {
			write(t, p, `{"version":1,"token":"old","expiry":"2030-01-01T00:00:00Z"}`)
		}, "entry has format 1, want 2"},
		{"no token", func(t *testing.T, _ *Cache, p string) {
			write(t, p, `{"version":2,"expiry":"2030-01-01T00:00:00Z"}`)
		}, "entry incomplete"},
		{"loose permissions", func(t *testing.T, _ *Cache, p string) {
			skipOnWindows(t)
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "entry has loose permissions"},
		{"copied from another key", func(t *testing.T, c *Cache, p string) {
			if err := c.Put(keyFor("prod"), Entry{Token: "prod-token", Expiry: now.Add(time.Hour), Issued: now}); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(c.entryPath(keyFor("prod")), p); err != nil {
				t.Fatal(err)
			}
		}, "entry belongs to another key"},
		{"symbolic link", func(t *testing.T, c *Cache, p string) {
			skipOnWindows(t)
			target := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.Rename(p, target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}, "entry is not a regular file"},
		{"fifo", func(t *testing.T, c *Cache, p string) {
			skipOnWindows(t)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := mkfifo(p); err != nil {
				t.Fatal(err)
			}
		}, "entry is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, t.TempDir())
			if err := c.Put(key, Entry{Token: "tok", Expiry: now.Add(time.Hour), Issued: now}); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, c, c.entryPath(key))
			if _, err := c.Get(key, now); err == nil || !strings.HasPrefix(err.Error(), tc.wantReason) {
				t.Fatalf("err = %v, want %q", err, tc.wantReason)
			}
			if err := c.Put(key, Entry{Token: "fresh", Expiry: now.Add(time.Hour), Issued: now}); err != nil {
				t.Fatalf("replacing a bad entry: %v", err)
			}
			if e, err := c.Get(key, now); err != nil || e.Token != "fresh" {
				t.Errorf("after replacing: %q, %v; want the fresh entry", e.Token, err)
			}
		})
	}
}

// TestOpenRefusesADirectoryOthersControl plants what another user of a
// shared (0777) cache directory could: the private subdirectory created
// ahead by someone else, opened to everyone, or a link to elsewhere.
func TestOpenRefusesADirectoryOthersControl(t *testing.T) {
	skipOnWindows(t)
	for _, tc := range []struct {
		name    string
		plant   func(t *testing.T, sub string)
		wantErr string
	}{
		{"symbolic link", func(t *testing.T, sub string) {
			if err := os.Symlink(t.TempDir(), sub); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"open to others", func(t *testing.T, sub string) {
			if err := os.Mkdir(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sub, 0o777); err != nil {
				t.Fatal(err)
			}
		}, "is open to other users"},
		{"a file", func(t *testing.T, sub string) { write(t, sub, "") }, "is not a directory"},
		{"another owner", func(t *testing.T, sub string) {
			if os.Geteuid() != 0 {
				t.Skip("only root can give a directory to another user")
			}
			if err := os.Mkdir(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(sub, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "is owned by another user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shared := t.TempDir()
			if err := os.Chmod(shared, 0o777); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, filepath.Join(shared, userDirName()))
			_, err := Open(shared)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "set --cache-dir") {
				t.Fatalf("Open = %v, want %q and a fix", err, tc.wantErr)
			}
		})
	}
}

func TestLockSerialisesOneKeyOnly(t *testing.T) {
	c := open(t, t.TempDir())
	unlock, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	unlockOther, err := c.Lock(context.Background(), keyFor("prod"))
	if err != nil {
		t.Fatalf("another key is blocked: %v", err)
	}
	unlockOther()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(ctx, key); err == nil {
		t.Fatal("second Lock of a held key succeeded")
	}
	unlock()
	unlock2, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}

func TestServedRemembersEachCallerUntilPut(t *testing.T) {
	c := open(t, t.TempDir())
	now := time.Now()
	if err := c.Put(key, Entry{Token: "tok", Expiry: now.Add(time.Minute), Issued: now}); err != nil {
		t.Fatal(err)
	}
	e, err := c.Get(key, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		caller string
		want   bool
	}{{"100", false}, {"200", false}, {"100", true}, {"100", true}, {"200", true}} {
		if again, err := c.Served(key, step.caller, e); err != nil || again != step.want {
			t.Errorf("Served(%s) = %v, %v; want %v", step.caller, again, err, step.want)
		}
	}
	if err := c.Put(key, Entry{Token: "tok2", Expiry: now.Add(time.Minute), Issued: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	e2, err := c.Get(key, now)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.Served(key, "100", e2); err != nil || again {
		t.Errorf("after Put: Served = %v, %v; want a first serving", again, err)
	}
	if again, _ := c.Served(key, "100", e); again {
		t.Error("the old entry counts as served after the new one was")
	}
}

func TestListAndClear(t *testing.T) {
	c := open(t, t.TempDir())
	now := time.Now()
	for _, k := range []Key{keyFor("dev"), keyFor("prod")} {
		if err := c.Put(k, Entry{Token: "secret-" + k.Label["target"], Expiry: now.Add(time.Hour), Issued: now}); err != nil {
			t.Fatal(err)
		}
	}
	junk := filepath.Join(c.Dir(), strings.Repeat("0", 64)+".json")
	write(t, junk, "{")
	others := []string{filepath.Join(c.Dir(), "package.json"), filepath.Join(c.Dir(), "notes.json")}
	for _, f := range others {
		write(t, f, `{"name":"not brokercred's"}`)
	}
	entries, err := c.List()
	if err != nil || len(entries) != 2 {
		t.Fatalf("List = %d entries, %v; want 2", len(entries), err)
	}
	for _, f := range mustGlob(t, c.Dir()) {
		if strings.Contains(f, "secret") || strings.Contains(f, "dev") || strings.Contains(f, "ou.example.com") {
			t.Errorf("file name %s reveals its key or token", f)
		}
	}
	if n, err := c.Clear(func(e Entry) bool { return e.Label["target"] == "prod" }); n != 1 || err != nil {
		t.Fatalf("Clear(prod) = %d, %v; want 1", n, err)
	}
	if entries, _ := c.List(); len(entries) != 1 || entries[0].Label["target"] != "dev" {
		t.Fatalf("after Clear(prod): %+v, want only dev", entries)
	}
	if n, err := c.Clear(nil); n != 2 || err != nil { // dev and the corrupt entry of ours
		t.Fatalf("Clear all = %d, %v; want 2", n, err)
	}
	for _, f := range others {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("Clear removed %s, which brokercred did not write", filepath.Base(f))
		}
	}
}

func skipOnWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions, links or FIFOs on Windows")
	}
}

func assertPrivate(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", filepath.Base(path), got, want)
	}
}

func truncate(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustGlob(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestThrottleAllowsOncePerPeriodAndSurvivesPut(t *testing.T) {
	c := open(t, t.TempDir())
	k := Key{ID: []byte("throttled")}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		after time.Duration
		want  bool
	}{{0, true}, {time.Second, false}, {9 * time.Second, false}, {10 * time.Second, true}, {11 * time.Second, false}} {
		if err := c.Put(k, Entry{Token: "t", Expiry: at.Add(time.Hour), Issued: at}); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Throttle(k, at.Add(step.after), 10*time.Second); got != step.want || err != nil {
			t.Errorf("Throttle at +%s = %v, %v; want %v", step.after, got, err, step.want)
		}
	}
}

// TestLockStaysInTheOpenedDirectory: another user who can rename entries of
// the shared cache dir moves the private directory away and puts one of
// their own at its path. The lock must still be taken in the directory the
// entries are read from, or one herd splits into several broker requests.
func TestLockStaysInTheOpenedDirectory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the lock goes through /proc/self/fd on Linux only; elsewhere Lock refuses a moved directory")
	}
	shared := t.TempDir()
	c := open(t, shared)
	moved := c.dir + ".moved"
	if err := os.Rename(c.dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer unlock()
	if _, err := os.Lstat(filepath.Join(moved, key.name()+".lock")); err != nil {
		t.Errorf("the lock is not in the opened directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(c.dir, key.name()+".lock")); err == nil {
		t.Error("the lock was taken in the directory planted at the old path")
	}
}

func TestIsEntryName(t *testing.T) {
	hash := strings.Repeat("0123456789abcdef", 4)
	for name, want := range map[string]bool{
		hash + ".json": true, strings.ToUpper(hash) + ".json": false, hash[1:] + ".json": false,
		hash + "0.json": false, hash + ".lock": false, "package.json": false, hash: false,
	} {
		if got := isEntryName(name); got != want {
			t.Errorf("isEntryName(%q) = %v, want %v", name, got, want)
		}
	}
}
