// Command skycall talks to any skynet cluster from a terminal, as grpcurl
// does for gRPC: list the registry's nodes, call and send to a service with
// arguments written as Lua literals, query a name, ping a node and load-test
// it. It speaks skynet's cluster protocol through the sender library, so it
// reaches skynet nodes and skycall Servers alike, inside a Kubernetes cluster
// or outside it.
//
// Installed as kubectl-skycall on the PATH, it is also `kubectl skycall`.
// See `skycall --help` and README.md ("Command line") for the commands and
// exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, errOut: os.Stderr}, displayName(os.Args[0]))
	stop()
	os.Exit(code)
}

// displayName is how help text names the command: "kubectl skycall" when
// kubectl runs this binary as its plugin (kubectl-skycall), else "skycall".
func displayName(argv0 string) string {
	base := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	if strings.HasPrefix(base, "kubectl-") {
		return "kubectl " + strings.ReplaceAll(strings.TrimPrefix(base, "kubectl-"), "_", "-")
	}
	return "skycall"
}
