//go:build unix

package cache

import "syscall"

// mkfifo plants a FIFO at path, as another user of a shared directory could.
func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }
