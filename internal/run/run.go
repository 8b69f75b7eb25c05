// Package run starts a command with a token in its environment, the way
// `aws-vault exec` and `op run` do: the token never appears on a command
// line, in a shell variable or in brokercred's output.
package run

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Command is a command to run with a token, checked before any token is
// fetched so that a mistake costs no broker request.
type Command struct {
	path    string   // the executable, found on PATH
	argv    []string // its arguments, argv[0] first
	envName string   // the variable that carries the token
}

// Prepare checks that argv names a command that can be found and that
// envName is a variable name. A leading "--" in argv is dropped.
func Prepare(argv []string, envName string) (Command, error) {
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return Command{}, errors.New("no command to run; give it after --, for example: brokercred run --env ARGOCD_AUTH_TOKEN -- argocd app list")
	}
	if !isEnvName(envName) {
		return Command{}, fmt.Errorf("--env %q is not an environment variable name; use letters, digits and underscores, such as ARGOCD_AUTH_TOKEN", envName)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return Command{}, fmt.Errorf("cannot run %q: %v; check the command name and PATH", argv[0], errors.Unwrap(err))
	}
	return Command{path: path, argv: argv, envName: envName}, nil
}

// Exec runs c with its variable set to token in environ (replacing any
// value it had). Where the command can replace this process (unix), Exec
// does not return when it succeeds; elsewhere (Windows) it waits for the
// command and exits with its exit code.
func (c Command) Exec(token string, environ []string) error {
	return replace(c.path, c.argv, withVar(environ, c.envName, token))
}

// withVar is environ without any entry for name, plus name=value.
func withVar(environ []string, name, value string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); k != name {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// isEnvName reports whether name is a portable environment variable name
// (POSIX: letters, digits and underscores, not starting with a digit).
func isEnvName(name string) bool {
	for i, c := range name {
		letter := c == '_' || ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return name != ""
}
