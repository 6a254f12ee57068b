// Command printinfo prints buildinfo.Get, for the package's test.
package main

import (
	"fmt"

	"github.com/patchbay/patchbay/buildinfo"
)

func main() { fmt.Println(buildinfo.Get().String()) }
