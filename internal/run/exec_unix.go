//go:build unix

package run

import (
	"fmt"
	"syscall"
)

// replace turns this process into the command: its exit code, signals and
// terminal are the command's own, and no brokercred process stays behind.
func replace(path string, argv, env []string) error {
	err := syscall.Exec(path, argv, env)
	return fmt.Errorf("cannot run %q: %v; check it is an executable file", path, err)
}
