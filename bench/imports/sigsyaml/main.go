// Command sigsyaml measures the start-up cost of importing sigs.k8s.io/yaml.
package main

import (
	"os"

	"sigs.k8s.io/yaml"
)

var _ = yaml.Marshal

func main() { os.Stdout.WriteString("ok\n") }
