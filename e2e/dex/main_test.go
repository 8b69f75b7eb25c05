package dex

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// maxBuild bounds the builds in TestMain. A cold Dex build compiles a few
// hundred packages: about five minutes of CPU.
const maxBuild = 15 * time.Minute

// dexBin is Dex, built by TestMain as this module's tool (go.mod's tool
// directive pins the version); brokercredBin is built into a temp dir.
var dexBin, brokercredBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(buildAndRun(m))
}

// buildBudget is how long TestMain may spend building. go test kills the
// test binary a minute after -timeout, counted from its start, builds
// included; the tests themselves take seconds. So the builds get -timeout
// less a minute, and a cold cache that needs longer fails with a message
// rather than a kill.
func buildBudget() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return maxBuild
	}
	d, _ := f.Value.(flag.Getter).Get().(time.Duration)
	switch {
	case d <= 0:
		return maxBuild
	case d <= 2*time.Minute:
		return d / 2
	}
	return min(d-time.Minute, maxBuild)
}

func buildAndRun(m *testing.M) int {
	// Whatever configures brokercred or claims to come from client-go stays
	// out of every process the tests start, client-go's exec plugin included.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "BROKERCRED_") || name == "KUBERNETES_EXEC_INFO" {
			os.Unsetenv(name)
		}
	}
	dir, err := os.MkdirTemp("", "brokercred-dex-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "make build dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	budget := buildBudget()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if dexBin, err = buildDex(ctx); err != nil {
		fmt.Fprintln(os.Stderr, buildError(ctx, budget, err))
		return 1
	}
	// brokercred from the main module, with that module's own go.mod.
	brokercredBin = filepath.Join(dir, "brokercred")
	if err := goBuild(ctx, filepath.Join("..", ".."), brokercredBin, "."); err != nil {
		fmt.Fprintln(os.Stderr, buildError(ctx, budget, err))
		return 1
	}
	return m.Run()
}

func buildError(ctx context.Context, budget time.Duration, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%v\nthe builds did not finish within %s (go test -timeout less a minute); a cold build of Dex takes about five minutes of CPU: raise -timeout or keep the Go build cache between runs", err, budget)
	}
	return err
}

// buildDex runs build.sh, which builds Dex at the version go.mod pins
// once per machine and prints the binary's path (e2e/argocd runs the same
// script, so the two share the build). The memory storage the tests use
// needs no cgo; only Dex's sqlite3 storage does.
func buildDex(ctx context.Context) (string, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "./build.sh")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build.sh: %v\n%s", err, stderr.String())
	}
	bin := strings.TrimSpace(string(out))
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("build.sh printed %q, not the path of an executable: %v", bin, err)
	}
	fmt.Fprintf(os.Stderr, "e2e/dex: build.sh (Dex) took %s\n", time.Since(start).Round(100*time.Millisecond))
	return bin, nil
}

func goBuild(ctx context.Context, dir, out, pkg string) error {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	fmt.Fprintf(os.Stderr, "e2e/dex: go build %s took %s\n", pkg, time.Since(start).Round(100*time.Millisecond))
	return nil
}
