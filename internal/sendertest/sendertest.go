// Package sendertest holds what tests outside the sender package need to
// stand up a real skycall node on loopback: a Server serving on 127.0.0.1,
// closed when the test ends.
package sendertest

import (
	"context"
	"net"
	"testing"

	"github.com/skycall-io/skycall/sender"
)

// Serve serves srv on a new 127.0.0.1 port until the test ends and returns
// the port's address.
func Serve(t testing.TB, srv *sender.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// EchoNode is a Server named name whose @echo replies with the request's
// bytes, served as Serve does; it returns the node's address.
func EchoNode(t testing.TB, name string, opts ...sender.ServerOption) string {
	t.Helper()
	srv := sender.NewServer(name, opts...)
	if _, err := srv.HandleFunc("@echo", func(_ context.Context, req *sender.Request) ([]byte, error) {
		return req.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	return Serve(t, srv)
}
