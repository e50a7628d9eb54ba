package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/server"
)

// runNode serves one cluster node: @echo answers calls with what it got,
// @log takes pushes. Every message is printed as it is handled, in arrival
// order, so whoever reads the output can check the order.
func runNode(args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	name := fs.String("name", "", "node name this server answers to (required)")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	record := fs.String("record", "", "directory to record pushes of a load (see recorder) in, instead of printing every message")
	_ = fs.Parse(args)
	if *name == "" {
		return fmt.Errorf("--name is required")
	}
	var rec *recorder
	if *record != "" {
		var err error
		if rec, err = newRecorder(*record, *name); err != nil {
			return err
		}
		defer rec.Close()
	}

	srv := server.New(*name)
	// One service for both kinds, so that pushes and calls are handled in
	// one queue, in the order they arrived.
	if _, err := srv.HandleFunc("@echo", func(_ context.Context, req *server.Request) ([]byte, error) {
		vals, err := luaseri.Unpack(req.Payload)
		if err != nil {
			return nil, fmt.Errorf("not a skynet.pack payload: %w", err)
		}
		kind := "call"
		if req.Push {
			kind = "send"
		}
		if rec != nil {
			if req.Push {
				return nil, rec.push(vals)
			}
			return luaseri.Pack(append([]any{*name}, vals...)...)
		}
		fmt.Printf("received %s %v\n", kind, vals)
		return luaseri.Pack(append([]any{*name}, vals...)...)
	}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())

	// SIGTERM: handle what was received and write the replies, then exit.
	// Serve returns as soon as Shutdown begins; wait for Shutdown itself,
	// or the process would end with handlers still running.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := <-sig
		fmt.Printf("%v: shutting down\n", s)
		if rec != nil && s == syscall.SIGTERM {
			rec.event("sigterm")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if rec != nil {
			if err != nil {
				fmt.Printf("shutdown: %v\n", err)
				rec.event("shutdown-failed")
			} else {
				rec.event("shutdown")
			}
		}
	}()
	if err := srv.Serve(ln); err != nil && err != server.ErrClosed {
		return err
	}
	<-done
	fmt.Println("stopped")
	return nil
}
