package kube

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/brokercred/brokercred/e2e/kube/kubeworld"
)

// kubeVersions are the kube-apiserver releases the suite runs against: the
// one it was written for and the newest that builds. .ci/e2e builds the same
// list before go test.
var kubeVersions = []string{"v1.34.1", "v1.37.2"}

// The programs the suite runs, found or built once by TestMain.
var (
	brokercred string // built from the main module
	// kubeAPIServers maps a version of kubeVersions to its kube-apiserver,
	// built by build.sh; KUBE_APISERVER names one prebuilt binary instead.
	kubeAPIServers = map[string]string{}
	etcd           string // ETCD, or etcd on PATH
	// missing says why the suite cannot run here; tests skip with it.
	missing string
)

// buildTimeout bounds go build of brokercred and build.sh (which is
// instant once kube-apiserver is built; run it first on a cold machine).
const buildTimeout = 30 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "brokercred-e2e-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	brokercred = filepath.Join(dir, "brokercred")
	if err := run(filepath.Join("..", ".."), "go", "build", "-o", brokercred, "."); err != nil {
		fmt.Fprintf(os.Stderr, "go build brokercred: %v\n", err)
		return 1
	}
	etcd, missing = kubeworld.Etcd()
	switch bin := os.Getenv("KUBE_APISERVER"); {
	case bin != "":
		kubeAPIServers["KUBE_APISERVER"] = bin
	case missing == "":
		for _, version := range kubeVersions {
			if kubeAPIServers[version], err = buildKubeAPIServer(version); err != nil {
				fmt.Fprintf(os.Stderr, "build kube-apiserver %s: %v\n", version, err)
				return 1
			}
		}
	}
	return m.Run()
}

// buildKubeAPIServer runs build.sh for version and returns the path it
// prints last.
func buildKubeAPIServer(version string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	return kubeworld.BuildKubeAPIServer(ctx, "./build.sh", version)
}

// run runs a command in dir (relative to this package) with its output on
// stderr.
func run(dir string, argv ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
	return cmd.Run()
}

// needComponents skips the test when etcd or kube-apiserver is not there.
func needComponents(t *testing.T) {
	t.Helper()
	if missing != "" {
		t.Skip(missing)
	}
}
