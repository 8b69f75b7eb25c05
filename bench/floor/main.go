// Command floor is the yardstick for whole-process start-up: a static Go
// binary that prints a fixed ExecCredential and does nothing else. No exec
// credential plugin written in Go can start faster.
package main

import "os"

const credential = `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false},` +
	`"status":{"expirationTimestamp":"2099-01-01T00:00:00Z","token":"floor"}}` + "\n"

func main() {
	os.Stdout.WriteString(credential)
}
