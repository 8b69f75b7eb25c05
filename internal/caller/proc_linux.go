package caller

import (
	"os"
	"strconv"
	"strings"
)

// startTime is the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat), or "" when it cannot be read.
func startTime(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count the fields after its closing parenthesis (field 3 onwards).
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

// executable is the program process pid runs now (after any exec), or ""
// when it cannot be read.
func executable(pid int) string {
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return exe
}
