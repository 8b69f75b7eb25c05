// Package cache keeps short-lived tokens on disk so that every process that
// runs the plugin shares one broker round trip per token lifetime. Entries are
// named by a hash of their key, locked through a separate lock file, written
// atomically, and ignored (never served) when anything about them is off.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// formatVersion is bumped whenever the entry layout changes; entries of any
// other version are ignored and replaced.
const formatVersion = 1

// lockPoll is how often a waiting process retries a held lock.
const lockPoll = 5 * time.Millisecond

// Key names what a cached token was issued for. Every field takes part in the
// entry's file name; two keys that differ in any field never share an entry.
type Key struct {
	Broker   string // broker URL
	Protocol string // broker protocol
	Target   string // remote cluster name
	Server   string // remote API server URL, when known; empty otherwise
	// Request holds the protocol settings that change which token the
	// broker issues (token exchange: audience, client, connector, scopes,
	// token types); empty for get-target-token.
	Request string
	// Identity is who asked: the pod token's issuer and subject, or a hash of
	// the token when it is not a JWT. Never the token itself.
	Identity string
	// Subject is a printable name for the identity (a ServiceAccount), shown
	// by List. It is not part of the file name.
	Subject string `json:"-"`
}

// Entry is one cached token.
type Entry struct {
	Version int       `json:"version"`
	Key     Key       `json:"key"`
	Subject string    `json:"subject"` // printable identity, for listings
	Token   string    `json:"token"`
	Expiry  time.Time `json:"expiry"`
	Created time.Time `json:"created"`
}

// Cache is a directory of entries. The zero value is not usable; use New.
type Cache struct {
	dir string
}

// New returns a cache in dir. It does not touch the disk: the directory is
// created on the first Lock or Put.
func New(dir string) *Cache {
	return &Cache{dir: dir}
}

// Dir is the directory the cache lives in.
func (c *Cache) Dir() string { return c.dir }

// name is the hex SHA-256 of every field of the key.
func (k Key) name() string {
	b, _ := json.Marshal([]any{formatVersion, k.Broker, k.Protocol, k.Target, k.Server, k.Identity, k.Request})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (c *Cache) entryPath(k Key) string { return filepath.Join(c.dir, k.name()+".json") }
func (c *Cache) lockPath(k Key) string  { return filepath.Join(c.dir, k.name()+".lock") }

// Get returns the entry for k when one exists, is well formed, belongs to k,
// is private to this user and has not expired by now. Anything else is a miss
// with a reason, never an error: the cache is only an optimisation.
func (c *Cache) Get(k Key, now time.Time) (Entry, string) {
	e, reason := readEntry(c.entryPath(k))
	if reason != "" {
		return Entry{}, reason
	}
	if e.Key != k.withoutSubject() {
		return Entry{}, "entry belongs to another key"
	}
	if !now.Before(e.Expiry) {
		return Entry{}, "entry expired at " + e.Expiry.UTC().Format(time.RFC3339)
	}
	return e, ""
}

func (k Key) withoutSubject() Key { k.Subject = ""; return k }

// readEntry reads and checks one entry file, returning why it is unusable.
func readEntry(path string) (Entry, string) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, "no entry"
	}
	if err != nil {
		return Entry{}, "entry unreadable: " + errors.Unwrap(err).Error()
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Entry{}, "entry unreadable"
	}
	if reason := privateToUs(info); reason != "" {
		return Entry{}, reason
	}
	return decodeEntry(f)
}

// maxEntry caps how much of an entry file is read: entries hold one token
// of a few KiB, and anything larger is not one of ours.
const maxEntry = 1 << 20

// decodeEntry reads one entry and says why it is unusable: anything but
// exactly one JSON object of the current format with a token and an expiry.
func decodeEntry(r io.Reader) (Entry, string) {
	data, err := io.ReadAll(io.LimitReader(r, maxEntry+1))
	if err != nil {
		return Entry{}, "entry unreadable"
	}
	var e Entry
	if len(data) > maxEntry || json.Unmarshal(data, &e) != nil {
		return Entry{}, "entry corrupt"
	}
	if e.Version != formatVersion {
		return Entry{}, fmt.Sprintf("entry has format %d, want %d", e.Version, formatVersion)
	}
	if e.Token == "" || e.Expiry.IsZero() {
		return Entry{}, "entry incomplete"
	}
	return e, ""
}

// Lock takes the lock for k, waiting until ctx is done. Only one process
// holds a key's lock at a time; other keys are not blocked. The lock dies
// with its process, so a killed holder never blocks the next call.
func (c *Cache) Lock(ctx context.Context, k Key) (unlock func(), err error) {
	if err := c.ensureDir(); err != nil {
		return nil, err
	}
	l := flock.New(c.lockPath(k), flock.SetPermissions(0o600))
	ok, err := l.TryLockContext(ctx, lockPoll)
	if err != nil || !ok {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("wait for cache lock %s: %w", l.Path(), ctx.Err())
		}
		return nil, fmt.Errorf("take cache lock %s: %w", l.Path(), err)
	}
	return func() { _ = l.Unlock() }, nil
}

// Put stores e for k atomically: a temp file in the same directory renamed
// over the entry, so a reader sees the old entry or the new, never half of
// one. The file is not fsynced: after a power loss an entry may come back
// empty or truncated, which Get treats as a miss, and an fsync would cost
// every cache miss tens of milliseconds while the herd waits on the lock.
func (c *Cache) Put(k Key, token string, expiry, now time.Time) error {
	if err := c.ensureDir(); err != nil {
		return err
	}
	e := Entry{Version: formatVersion, Key: k.withoutSubject(), Subject: k.Subject, Token: token, Expiry: expiry.UTC(), Created: now.UTC()}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode cache entry: %w", err)
	}
	return writeAtomic(c.entryPath(k), data)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write cache entry: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after a successful rename
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write cache entry: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write cache entry: %w", err)
	}
	return nil
}

// ensureDir creates the cache directory, private to this user.
func (c *Cache) ensureDir() error {
	if c.dir == "" {
		return errors.New("no cache directory")
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	return nil
}

// List returns every usable entry, expired ones included, in no set order.
// Unreadable or foreign files are skipped.
func (c *Cache) List() ([]Entry, error) {
	paths, err := filepath.Glob(filepath.Join(c.dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list cache %s: %w", c.dir, err)
	}
	var entries []Entry
	for _, p := range paths {
		if e, reason := readEntry(p); reason == "" && strings.TrimSuffix(filepath.Base(p), ".json") == e.Key.name() {
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// Clear removes the entries for target, or every entry when target is empty,
// and returns how many it removed.
func (c *Cache) Clear(target string) (int, error) {
	paths, err := filepath.Glob(filepath.Join(c.dir, "*.json"))
	if err != nil {
		return 0, fmt.Errorf("clear cache %s: %w", c.dir, err)
	}
	n := 0
	for _, p := range paths {
		e, reason := readEntry(p)
		if target != "" && (reason != "" || e.Key.Target != target) {
			continue
		}
		if err := os.Remove(p); err != nil {
			return n, fmt.Errorf("remove cache entry: %w", err)
		}
		_ = os.Remove(strings.TrimSuffix(p, ".json") + ".lock")
		n++
	}
	return n, nil
}

// BrokerHost is the host of a broker URL, for listings; it never includes
// credentials or query parameters.
func BrokerHost(brokerURL string) string {
	u, err := url.Parse(brokerURL)
	if err != nil || u.Host == "" {
		return "(unparsable)"
	}
	return u.Host
}
