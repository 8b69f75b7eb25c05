package kubeworld

import (
	"context"
	"os"
	"os/exec"
	"strings"
)

// Etcd is the etcd binary: $ETCD, else etcd on PATH. When there is none it
// returns "" and a reason a test can skip with.
func Etcd() (path, missing string) {
	if path = os.Getenv("ETCD"); path != "" {
		return path, ""
	}
	path, err := exec.LookPath("etcd")
	if err != nil {
		return "", "no etcd on PATH (apt-get install etcd-server, or set ETCD)"
	}
	return path, ""
}

// BuildKubeAPIServer runs e2e/kube/build.sh (at script) for kube-apiserver
// of version within ctx, its progress on stderr, and returns the path it
// prints last. Once built, it returns at once.
func BuildKubeAPIServer(ctx context.Context, script, version string) (string, error) {
	cmd := exec.CommandContext(ctx, script, "kube-apiserver", version)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}
