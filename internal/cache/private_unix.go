//go:build unix

package cache

import (
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// Flags for opening cache files: never follow a symbolic link, never block
// on a FIFO.
const (
	openNoFollow = syscall.O_NOFOLLOW
	openNonBlock = syscall.O_NONBLOCK
)

// mkdirPrivate creates dir for this user alone.
func mkdirPrivate(dir string) error { return os.Mkdir(dir, 0o700) }

// userDirName names the calling user's private subdirectory.
func userDirName() string { return "user-" + strconv.Itoa(os.Geteuid()) }

// ownedByUs reports whether info's file belongs to the effective user.
func ownedByUs(info fs.FileInfo, _ string) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// privateDir says why the cache directory (Lstat's info) must not be
// trusted: not a real directory, owned by another user, or open to others.
func privateDir(info fs.FileInfo, path string) string {
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return "is a symbolic link"
	case !info.IsDir():
		return "is not a directory"
	case !ownedByUs(info, path):
		return "is owned by another user"
	case info.Mode().Perm()&0o077 != 0:
		return "is open to other users (" + info.Mode().Perm().String() + ")"
	}
	return ""
}

// privateFile says why an entry file must not be trusted: owned by another
// user, or readable or writable by anyone else.
func privateFile(info fs.FileInfo, path string) string {
	if info.Mode().Perm()&0o077 != 0 {
		return "entry has loose permissions " + info.Mode().Perm().String()
	}
	if !ownedByUs(info, path) {
		return "entry owned by another user"
	}
	return ""
}
