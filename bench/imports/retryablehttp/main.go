// Command retryablehttp measures the start-up cost of importing go-retryablehttp.
package main

import (
	"os"

	"github.com/hashicorp/go-retryablehttp"
)

var _ = retryablehttp.NewClient

func main() { os.Stdout.WriteString("ok\n") }
