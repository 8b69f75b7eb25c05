//go:build !unix

package run

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// replace runs the command as a child with this process's standard streams
// and exits with its exit code: Windows cannot replace a running process.
func replace(path string, argv, env []string) error {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		return fmt.Errorf("cannot run %q: %v; check it is an executable file", path, err)
	}
	os.Exit(0)
	return nil
}
