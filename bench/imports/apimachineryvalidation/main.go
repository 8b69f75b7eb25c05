// Command apimachineryvalidation measures the start-up cost of importing
// apimachinery's validation helpers.
package main

import (
	"os"

	"k8s.io/apimachinery/pkg/util/validation"
)

var _ = validation.IsQualifiedName

func main() { os.Stdout.WriteString("ok\n") }
