// Package sendertest holds what tests of the Client (in package sender and
// beyond) need to stand up a real skycall node on loopback: a Server
// serving on 127.0.0.1, closed when the test ends.
package sendertest

import (
	"context"
	"net"
	"testing"

	"github.com/skycall-io/skycall/sender/server"
)

// Serve serves srv on a new 127.0.0.1 port until the test ends and returns
// the port's address.
func Serve(t testing.TB, srv *server.Server) string {
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
func EchoNode(t testing.TB, name string, opts ...server.Option) string {
	t.Helper()
	srv := server.New(name, opts...)
	if _, err := srv.HandleFunc("@echo", func(_ context.Context, req *server.Request) ([]byte, error) {
		return req.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	return Serve(t, srv)
}

// Handle registers f as name on s, failing the test on an error.
func Handle(t testing.TB, s *server.Server, name string, f server.HandlerFunc, opts ...server.HandleOption) uint32 {
	t.Helper()
	h, err := s.Handle(name, f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Echo answers every call with its payload.
func Echo(_ context.Context, req *server.Request) ([]byte, error) { return req.Payload, nil }
