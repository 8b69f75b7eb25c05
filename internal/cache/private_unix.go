//go:build unix

package cache

import (
	"io/fs"
	"os"
	"syscall"
)

// privateToUs says why an entry file must not be trusted: owned by another
// user, or readable or writable by anyone else.
func privateToUs(info fs.FileInfo) string {
	if info.Mode().Perm()&0o077 != 0 {
		return "entry has loose permissions " + info.Mode().Perm().String()
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return "entry owned by another user"
	}
	return ""
}
