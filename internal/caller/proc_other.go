//go:build !linux

package caller

// startTime is unknown outside Linux: a reused process id is then the same
// client, as long as the exec configuration is the same.
func startTime(int) string { return "" }

// executable is unknown outside Linux: a program that execs another under
// the same process id is then one client.
func executable(int) string { return "" }
