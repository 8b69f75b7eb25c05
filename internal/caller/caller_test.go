package caller

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

func TestNameTellsConfigurationsApart(t *testing.T) {
	ppid := os.Getpid()
	base := Name(ppid, []string{"token"}, []string{"HOME=/a", "BROKERCRED_TARGET=x"}, `{"spec":{}}`)
	for name, other := range map[string]string{
		"another exec info":   Name(ppid, []string{"token"}, []string{"HOME=/a", "BROKERCRED_TARGET=x"}, `{"spec":{"cluster":{}}}`),
		"other arguments":     Name(ppid, []string{"token", "-v"}, []string{"HOME=/a", "BROKERCRED_TARGET=x"}, `{"spec":{}}`),
		"another BROKERCRED_": Name(ppid, []string{"token"}, []string{"HOME=/a", "BROKERCRED_TARGET=y"}, `{"spec":{}}`),
	} {
		if other == base {
			t.Errorf("%s gives the same name", name)
		}
	}
	if same := Name(ppid, []string{"token"}, []string{"HOME=/b", "BROKERCRED_TARGET=x"}, `{"spec":{}}`); same != base {
		t.Error("an environment variable brokercred does not read changed the name")
	}
	for _, ppid := range []int{0, 1} {
		if got := Name(ppid, nil, nil, ""); got != "" {
			t.Errorf("Name(%d) = %q, want none: no client", ppid, got)
		}
	}
}

// TestNameChangesWhenTheProcessExecs: a program that execs another under the
// same process id, as the Google Cloud SDK's kubectl dispatcher does, is a
// new client on Linux.
func TestNameChangesWhenTheProcessExecs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux's /proc says what a process runs")
	}
	cmd := exec.Command("sh", "-c", `echo started; read line; exec sleep 60`)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	before := Name(pid, nil, nil, "")
	if startTime(pid) == "" || executable(pid) == "" {
		t.Fatal("cannot read the start time or the executable of a child process")
	}
	exe := executable(pid)
	_, _ = stdin.Write([]byte("go\n"))
	for executable(pid) == exe { // until the exec has happened
		runtime.Gosched()
	}
	if after := Name(pid, nil, nil, ""); after == before {
		t.Error("the process exec'd another program but kept its name")
	}
}
