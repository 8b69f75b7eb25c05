// Command kong measures the start-up cost of importing kong and parsing a
// small command line with it.
package main

import (
	"os"

	"github.com/alecthomas/kong"
)

type cli struct {
	Target string `name:"target" env:"BENCH_TARGET" help:"Target."`
}

func main() {
	var c cli
	kong.Parse(&c)
	os.Stdout.WriteString("ok\n")
}
