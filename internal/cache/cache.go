// Package cache keeps short-lived tokens on disk so that every process that
// runs the plugin shares one broker round trip per token lifetime. Entries
// are opaque to it: a key is bytes it hashes into a file name, plus a label
// for listings. They live in a directory private to the user, are locked
// through a separate lock file, written atomically, and ignored (never
// served) when anything about them is off.
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
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/adrg/xdg"
	"github.com/gofrs/flock"
)

// formatVersion is bumped whenever the entry layout changes; entries of any
// other version are ignored and replaced.
const formatVersion = 2

// lockPoll is how often a waiting process retries a held lock.
const lockPoll = 5 * time.Millisecond

// isEntryName reports whether file is named like an entry: the lowercase
// hex SHA-256 of its key, then .json. (A function, not a regular
// expression: a package-level one would be compiled on every start.)
func isEntryName(file string) bool {
	hash, ok := strings.CutSuffix(file, ".json")
	if !ok || len(hash) != 2*sha256.Size {
		return false
	}
	for _, c := range hash {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// DefaultDir is where the cache lives when no directory is given:
// $XDG_CACHE_HOME/brokercred.
func DefaultDir() string { return filepath.Join(xdg.CacheHome, "brokercred") }

// Key names one entry. ID is every byte that identifies what the token was
// issued for; it is hashed into the file name and never stored. Label
// describes the entry in listings and must hold no secret.
type Key struct {
	ID    []byte
	Label Label
}

// Label is a printable description of an entry, field by field. Nil means
// none.
type Label map[string]string

// name is the hex SHA-256 of the key's ID and the format version.
func (k Key) name() string {
	h := sha256.New()
	fmt.Fprintf(h, "brokercred cache v%d\n", formatVersion)
	h.Write(k.ID)
	return hex.EncodeToString(h.Sum(nil))
}

// Entry is one cached token.
type Entry struct {
	Version int       `json:"version"`
	Name    string    `json:"name"` // the key's hashed name, which the file must carry
	Label   Label     `json:"label"`
	Token   string    `json:"token"`
	Expiry  time.Time `json:"expiry"`
	Issued  time.Time `json:"issued"` // when brokercred obtained the token
	// ExpirySource says who set Expiry ("default-ttl" when nobody stated
	// it), so a reader with other limits can judge it; empty is unknown.
	ExpirySource string `json:"expiry_source,omitempty"`
}

// Cache is an open cache directory. The zero value is not usable; use Open.
type Cache struct {
	dir  string   // the user's private directory
	root *os.Root // dir, opened once: nothing outside it is ever touched
	// lockDir is where lock files are opened: dir through an open file
	// descriptor (dirFile) where the system allows, else dir.
	lockDir string
	dirFile *os.File
}

// Open opens the cache under dir (DefaultDir when empty): a subdirectory
// private to the calling user, created 0700 when missing. dir itself may be
// shared (a Kubernetes emptyDir is 0777); the subdirectory must be a real
// directory owned by this user that nobody else can enter, or Open refuses
// it. Close the cache when done.
func Open(dir string) (*Cache, error) {
	if dir == "" {
		dir = DefaultDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	sub := filepath.Join(dir, userDirName())
	if err := mkdirPrivate(sub); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	info, err := os.Lstat(sub)
	if err != nil {
		return nil, fmt.Errorf("check cache dir: %w", err)
	}
	if reason := privateDir(info, sub); reason != "" {
		return nil, fmt.Errorf("cache dir %s %s; remove it, or set --cache-dir to a directory of your own", sub, reason)
	}
	root, err := os.OpenRoot(sub)
	if err != nil {
		return nil, fmt.Errorf("open cache dir: %w", err)
	}
	if opened, err := root.Stat("."); err != nil || !os.SameFile(info, opened) {
		root.Close()
		return nil, fmt.Errorf("cache dir %s changed while it was opened; check who else writes to %s", sub, dir)
	}
	c := &Cache{dir: sub, root: root}
	c.lockDir, c.dirFile = lockDir(sub, info)
	return c, nil
}

// lockDir is the path locks are opened under: on Linux, the opened
// directory itself through /proc/self/fd, which no rename of sub or of a
// directory above it can redirect; elsewhere sub, whose locks Lock checks
// after taking them. dirFile keeps the directory open for the first.
func lockDir(sub string, want os.FileInfo) (string, *os.File) {
	f, err := os.Open(sub)
	if err != nil {
		return sub, nil
	}
	path := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if info, err := os.Stat(path); err != nil || !os.SameFile(info, want) {
		f.Close()
		return sub, nil
	}
	return path, f
}

// Close releases the directory.
func (c *Cache) Close() error {
	if c.dirFile != nil {
		c.dirFile.Close()
	}
	return c.root.Close()
}

// Dir is the user's private cache directory.
func (c *Cache) Dir() string { return c.dir }

// Get returns the entry for k when one exists, is a regular file private to
// this user, is well formed, belongs to k and has not expired by now. An
// error says why there is no usable entry; it is a miss, never fatal: the
// cache is only an optimisation.
func (c *Cache) Get(k Key, now time.Time) (Entry, error) {
	name := k.name()
	e, err := c.read(name + ".json")
	if err != nil {
		return Entry{}, err
	}
	if e.Name != name {
		return Entry{}, errors.New("entry belongs to another key")
	}
	if !now.Before(e.Expiry) {
		return Entry{}, fmt.Errorf("entry expired at %s", e.Expiry.UTC().Format(time.RFC3339))
	}
	return e, nil
}

// read opens one entry file (see openPrivate) and decodes it.
func (c *Cache) read(file string) (Entry, error) {
	f, err := c.openPrivate(file, "entry")
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	e, reason := decodeEntry(f)
	if reason != "" {
		return Entry{}, errors.New(reason)
	}
	return e, nil
}

// openPrivate opens file for reading without following a symbolic link and
// without blocking (a FIFO planted there cannot hang the call), and only if
// it is a regular file private to this user; what names the file in errors.
func (c *Cache) openPrivate(file, what string) (*os.File, error) {
	linfo, err := c.root.Lstat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("no " + what)
	}
	if err != nil {
		return nil, errors.New(what + " unreadable")
	}
	if !linfo.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", what, linfo.Mode().Type())
	}
	f, err := c.root.OpenFile(file, os.O_RDONLY|openNonBlock, 0)
	if err != nil {
		return nil, errors.New(what + " unreadable")
	}
	info, err := f.Stat()
	if err != nil || !os.SameFile(linfo, info) {
		f.Close()
		return nil, errors.New(what + " changed while it was opened")
	}
	if reason := privateFile(info, filepath.Join(c.dir, file)); reason != "" {
		f.Close()
		return nil, errors.New(reason)
	}
	return f, nil
}

// readSmall reads a private file of at most max bytes (see openPrivate).
func (c *Cache) readSmall(file, what string, max int64) ([]byte, error) {
	f, err := c.openPrivate(file, what)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil || int64(len(data)) > max {
		return nil, errors.New(what + " unreadable")
	}
	return data, nil
}

// writeNew replaces file by a new private file holding data. It never
// writes through what was there: whatever sat at the name (a FIFO, a link,
// another user's file) is removed first, and the file is created only if
// the name is then free.
func (c *Cache) writeNew(file string, data []byte) error {
	if err := c.root.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := c.root.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	return errors.Join(werr, f.Close())
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
	file := k.name() + ".lock"
	l := flock.New(filepath.Join(c.lockDir, file),
		flock.SetFlag(os.O_CREATE|os.O_RDWR|openNoFollow|openNonBlock), flock.SetPermissions(0o600))
	ok, err := l.TryLockContext(ctx, lockPoll)
	if err != nil || !ok {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("wait for cache lock %s: %w", filepath.Join(c.dir, file), ctx.Err())
		}
		return nil, fmt.Errorf("take cache lock %s: %w", filepath.Join(c.dir, file), err)
	}
	// The lock must be the one in the directory the entries are read from.
	held, herr := l.Stat()
	inRoot, rerr := c.root.Lstat(file)
	if herr != nil || rerr != nil || !os.SameFile(held, inRoot) {
		_ = l.Unlock()
		return nil, fmt.Errorf("cache lock %s is not in the cache directory (it was moved or replaced); check who else writes to %s", filepath.Join(c.dir, file), filepath.Dir(c.dir))
	}
	return func() { _ = l.Unlock() }, nil
}

// Put stores e's token for k (obtained at e.Issued, good until e.Expiry;
// its Version and Name are set here) atomically: a temp file renamed over
// the entry, so a reader sees the old
// entry or the new, never half of one. It forgets whom the old entry was
// served to (see Served). The file is not fsynced: after a power loss an
// entry may come back empty or truncated, which Get treats as a miss, and an
// fsync would cost every miss tens of milliseconds while the herd waits on
// the lock.
func (c *Cache) Put(k Key, e Entry) error {
	name := k.name()
	e.Version, e.Name, e.Label, e.Expiry, e.Issued = formatVersion, name, k.Label, e.Expiry.UTC(), e.Issued.UTC()
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode cache entry: %w", err)
	}
	if err := c.writeAtomic(name+".json", data); err != nil {
		return err
	}
	c.removeServed(name)
	return nil
}

func (c *Cache) writeAtomic(file string, data []byte) error {
	tmp, err := c.createTemp()
	if err != nil {
		return fmt.Errorf("write cache entry: %w", err)
	}
	name := filepath.Base(tmp.Name())
	defer c.root.Remove(name) // a no-op after a successful rename
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write cache entry: %w", err)
	}
	if err := c.root.Rename(name, file); err != nil {
		return fmt.Errorf("write cache entry: %w", err)
	}
	return nil
}

// createTemp creates a new private file in the cache directory.
func (c *Cache) createTemp() (*os.File, error) {
	for range 10 {
		name := fmt.Sprintf(".tmp-%d-%d", os.Getpid(), time.Now().UnixNano())
		f, err := c.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, errors.New("no free temp file name")
}

// maxServed bounds the served records kept per entry: past it, a new
// caller's record replaces them all. Each record is a few dozen bytes; an
// entry that lives a day may be served to thousands of short-lived callers.
const maxServed = 32

// Served records that e, the entry for k, was handed to caller (a short
// name safe in a file name, such as caller.Name gives) and reports whether
// it had been handed to that caller before. A caller that comes back for the
// same entry while it is fresh had it refused. The record is a small file
// beside the entry, removed by the next Put; past maxServed records for an
// entry, all are dropped, which costs a caller that comes back at most one
// more serving of its refused token. A record that cannot be read or
// written is an error: never a refusal.
func (c *Cache) Served(k Key, caller string, e Entry) (again bool, err error) {
	if caller == "" || strings.ContainsAny(caller, `/\.`) {
		return false, fmt.Errorf("caller name %q is not a file name", caller)
	}
	name := k.name()
	file := name + ".served-" + caller
	mark := e.Issued.UTC().Format(time.RFC3339Nano)
	if old, err := c.readSmall(file, "served record", 64); err == nil && string(old) == mark {
		return true, nil
	}
	if records, _ := fs.Glob(c.root.FS(), name+".served-*"); len(records) >= maxServed {
		c.removeServed(name)
	}
	if err := c.writeNew(file, []byte(mark)); err != nil {
		return false, fmt.Errorf("record serving: %w", err)
	}
	return false, nil
}

// removeServed forgets whom the entry called name was served to.
func (c *Cache) removeServed(name string) {
	files, _ := fs.Glob(c.root.FS(), name+".served-*")
	for _, f := range files {
		_ = c.root.Remove(f)
	}
}

// Throttle reports whether at least every has passed since the last time
// it allowed k at (never allowed counts as long ago), and if so records at
// as that time. Hold k's lock. The record survives Put, so a caller can
// throttle what it does to an entry however often the entry is replaced. A
// record that cannot be written is an error: nothing is allowed that could
// not be throttled.
func (c *Cache) Throttle(k Key, at time.Time, every time.Duration) (allowed bool, err error) {
	file := k.name() + ".throttle"
	if data, err := c.readSmall(file, "throttle record", 64); err == nil {
		if last, err := time.Parse(time.RFC3339Nano, string(data)); err == nil && at.Sub(last) < every && !at.Before(last) {
			return false, nil
		}
	}
	if err := c.writeNew(file, []byte(at.UTC().Format(time.RFC3339Nano))); err != nil {
		return false, fmt.Errorf("record throttle: %w", err)
	}
	return true, nil
}

// List returns every readable entry, expired ones included, in no set
// order. Files brokercred did not write are skipped.
func (c *Cache) List() ([]Entry, error) {
	var entries []Entry
	err := c.eachEntry(func(file string, e Entry, err error) error {
		if err == nil {
			entries = append(entries, e)
		}
		return nil
	})
	return entries, err
}

// Clear removes the entries match accepts (nil: every entry), with their
// locks and served records, and returns how many it removed. It touches only
// files brokercred writes: entry names it gives, regular files owned by this
// user; an unreadable entry of ours goes only when match is nil.
func (c *Cache) Clear(match func(Entry) bool) (int, error) {
	n := 0
	err := c.eachEntry(func(file string, e Entry, err error) error {
		switch {
		case err == nil && match != nil && !match(e):
			return nil
		case err != nil && (match != nil || !c.ownedRegular(file)):
			return nil
		}
		if err := c.root.Remove(file); err != nil {
			return fmt.Errorf("remove cache entry: %w", err)
		}
		name := file[:len(file)-len(".json")]
		_ = c.root.Remove(name + ".lock")
		_ = c.root.Remove(name + ".throttle")
		c.removeServed(name)
		n++
		return nil
	})
	return n, err
}

// eachEntry calls fn for every file named like an entry, with the entry or
// why it is unusable, and stops at fn's first error.
func (c *Cache) eachEntry(fn func(file string, e Entry, err error) error) error {
	f, err := c.root.Open(".")
	if err != nil {
		return fmt.Errorf("read cache %s: %w", c.dir, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read cache %s: %w", c.dir, err)
	}
	for _, file := range names {
		if !isEntryName(file) {
			continue
		}
		e, err := c.read(file)
		if err == nil && e.Name+".json" != file {
			err = errors.New("entry belongs to another key")
		}
		if err := fn(file, e, err); err != nil {
			return err
		}
	}
	return nil
}

// ownedRegular reports whether file is a regular file owned by this user.
func (c *Cache) ownedRegular(file string) bool {
	info, err := c.root.Lstat(file)
	return err == nil && info.Mode().IsRegular() && ownedByUs(info, filepath.Join(c.dir, file))
}
