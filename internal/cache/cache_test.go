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

var key = Key{Broker: "https://ou.example.com/api/get-target-token", Protocol: "get", Target: "dev",
	Identity: "https://k8s\nsystem:serviceaccount:argocd:x", Subject: "system:serviceaccount:argocd:x"}

func TestPutGet(t *testing.T) {
	c := New(filepath.Join(t.TempDir(), "cache"))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, reason := c.Get(key, now); reason != "no entry" {
		t.Fatalf("empty cache: reason = %q, want no entry", reason)
	}
	if err := c.Put(key, "tok", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	e, reason := c.Get(key, now.Add(59*time.Second))
	if reason != "" || e.Token != "tok" || e.Subject != key.Subject || !e.Created.Equal(now) {
		t.Fatalf("Get = %+v, %q; want the stored entry", e, reason)
	}
	if _, reason := c.Get(key, now.Add(time.Minute)); !strings.HasPrefix(reason, "entry expired") {
		t.Errorf("at expiry: reason = %q, want expired", reason)
	}
	for name, other := range map[string]Key{
		"target":   {Broker: key.Broker, Protocol: key.Protocol, Target: "prod", Identity: key.Identity},
		"identity": {Broker: key.Broker, Protocol: key.Protocol, Target: key.Target, Identity: "other"},
		"server":   {Broker: key.Broker, Protocol: key.Protocol, Target: key.Target, Identity: key.Identity, Server: "https://east"},
		"broker":   {Broker: "https://other", Protocol: key.Protocol, Target: key.Target, Identity: key.Identity},
	} {
		if _, reason := c.Get(other, now); reason != "no entry" {
			t.Errorf("key differing in %s: reason = %q, want no entry", name, reason)
		}
	}
	assertPrivate(t, c.Dir(), 0o700)
	assertPrivate(t, c.entryPath(key), 0o600)
}

func TestBadEntriesAreIgnored(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		damage     func(t *testing.T, path string)
		wantReason string
	}{
		{"truncated", func(t *testing.T, p string) { truncate(t, p, 20) }, "entry corrupt"},
		{"garbage", func(t *testing.T, p string) { write(t, p, "\x00\x01garbage") }, "entry corrupt"},
		{"older format", func(t *testing.T, p string) {
			write(t, p, `{"version":0,"token":"old","expiry":"2030-01-01T00:00:00Z"}`)
		}, "entry has format 0, want 1"},
		{"no token", func(t *testing.T, p string) {
			write(t, p, `{"version":1,"expiry":"2030-01-01T00:00:00Z"}`)
		}, "entry incomplete"},
		{"loose permissions", func(t *testing.T, p string) {
			if runtime.GOOS == "windows" {
				t.Skip("no Unix permissions on Windows")
			}
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "entry has loose permissions"},
		{"copied from another key", func(t *testing.T, p string) {
			c := New(filepath.Dir(p))
			other := key
			other.Target = "prod"
			if err := c.Put(other, "prod-token", now.Add(time.Hour), now); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(c.entryPath(other), p); err != nil {
				t.Fatal(err)
			}
		}, "entry belongs to another key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(t.TempDir())
			if err := c.Put(key, "tok", now.Add(time.Hour), now); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, c.entryPath(key))
			if _, reason := c.Get(key, now); !strings.HasPrefix(reason, tc.wantReason) {
				t.Fatalf("reason = %q, want %q", reason, tc.wantReason)
			}
			if err := c.Put(key, "fresh", now.Add(time.Hour), now); err != nil {
				t.Fatalf("replacing a bad entry: %v", err)
			}
			if e, reason := c.Get(key, now); reason != "" || e.Token != "fresh" {
				t.Errorf("after replacing: %q, %q; want the fresh entry", e.Token, reason)
			}
		})
	}
}

func TestLockSerialisesOneKeyOnly(t *testing.T) {
	c := New(t.TempDir())
	unlock, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	other := key
	other.Target = "prod"
	unlockOther, err := c.Lock(context.Background(), other)
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

func TestListAndClear(t *testing.T) {
	c := New(t.TempDir())
	now := time.Now()
	prod := key
	prod.Target = "prod"
	for _, k := range []Key{key, prod} {
		if err := c.Put(k, "secret-"+k.Target, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(c.Dir(), "junk.json"), "{")
	entries, err := c.List()
	if err != nil || len(entries) != 2 {
		t.Fatalf("List = %d entries, %v; want 2", len(entries), err)
	}
	for _, f := range mustGlob(t, c.Dir()) {
		if strings.Contains(f, "secret") || strings.Contains(f, "dev") || strings.Contains(f, "ou.example.com") {
			t.Errorf("file name %s reveals its key or token", f)
		}
	}
	if n, err := c.Clear("prod"); n != 1 || err != nil {
		t.Fatalf("Clear(prod) = %d, %v; want 1", n, err)
	}
	if entries, _ := c.List(); len(entries) != 1 || entries[0].Key.Target != "dev" {
		t.Fatalf("after Clear(prod): %+v, want only dev", entries)
	}
	if n, err := c.Clear(""); n != 2 || err != nil { // dev and the junk file
		t.Fatalf("Clear all = %d, %v; want 2", n, err)
	}
}

func TestBrokerHost(t *testing.T) {
	if got := BrokerHost("https://user:pw@ou.example.com:8443/api?x=1"); got != "ou.example.com:8443" {
		t.Errorf("BrokerHost = %q", got)
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
