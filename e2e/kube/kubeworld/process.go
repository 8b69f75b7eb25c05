package kubeworld

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long WaitReady waits for a server to get ready.
const StartTimeout = 3 * time.Minute

// Process is a server the test started in its own process group, with its
// output in a log file.
type Process struct {
	// Redact, when set, rewrites the log tail a failed test prints, to
	// leave out secrets the process logs; nil prints it as it is.
	Redact func(log string) string

	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed when the process has exited
}

// Start runs argv in a new process group, with this process's environment
// plus env, and stops the whole group when the test ends, printing the tail
// of its log if the test failed.
func Start(t testing.TB, name string, env []string, argv ...string) *Process {
	t.Helper()
	p := &Process{name: name, log: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the %s log:\n%s", name, p.tail(40))
		}
		p.Stop()
	})
	return p
}

// Stop sends SIGTERM to the process group, then SIGKILL if it lingers, and
// waits for the process to exit. Stopping twice is harmless.
func (p *Process) Stop() {
	pgid := -p.cmd.Process.Pid
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.exited
	}
}

// Log is the file the process writes its output to.
func (p *Process) Log() string { return p.log }

// WaitReady polls ready until it returns nil, failing the test if the
// process exits or StartTimeout passes first.
func (p *Process) WaitReady(t testing.TB, ready func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(StartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v); its log:\n%s", p.name, p.cmd.ProcessState, p.tail(40))
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v", p.name, StartTimeout, err)
		}
	}
}

// tail is the last n lines of the process's log, through Redact.
func (p *Process) tail(n int) string {
	if p.Redact == nil {
		return Tail(p.log, n)
	}
	return p.Redact(Tail(p.log, n))
}

// Tail returns the last n lines of the file at path.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartEtcd runs the etcd binary bin as a single member on loopback and
// returns its client URL once it is healthy.
func StartEtcd(t testing.TB, bin string) string {
	t.Helper()
	client := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	p := Start(t, "etcd", nil, bin,
		"--name=e2e", "--data-dir="+filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=e2e="+peer, "--logger=zap", "--log-level=warn")
	p.WaitReady(t, func(ctx context.Context) error { return HTTPOK(ctx, http.DefaultClient, client+"/health") })
	return client
}

// HTTPOK GETs url and returns an error unless the answer is 200.
func HTTPOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
