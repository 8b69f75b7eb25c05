// Command xdg measures the start-up cost of importing adrg/xdg.
package main

import (
	"os"

	"github.com/adrg/xdg"
)

func main() { os.Stdout.WriteString(xdg.CacheHome + "\n") }
