//go:build !unix

package cache

import "errors"

// mkfifo is not possible where there are no FIFOs in the file system; the
// tests that plant one skip there first.
func mkfifo(string) error { return errors.New("no FIFOs on this system") }
