// Command patchbay runs the whole patch lifecycle for a fleet of hosts:
// inventory, advisory matching, prioritisation and patching.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/patchbay/patchbay/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
