// Command nethttp measures the start-up cost of importing net/http.
package main

import (
	"net/http"
	"os"
)

var _ = http.Get

func main() { os.Stdout.WriteString("ok\n") }
