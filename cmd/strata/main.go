// Command strata turns Nix packages into OCI images: an on-demand registry,
// an image builder and a publisher in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"strata/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
