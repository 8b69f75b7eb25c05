// Command flock measures the start-up cost of importing gofrs/flock.
package main

import (
	"os"

	"github.com/gofrs/flock"
)

var _ = flock.New

func main() { os.Stdout.WriteString("ok\n") }
