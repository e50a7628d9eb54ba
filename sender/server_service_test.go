package sender

import (
	"context"
	"testing"

	"github.com/skycall-io/skycall/sender/wire"
)

// A connection reader holding the service table keeps a consistent
// snapshot while Handle adds services: Handle replaces the table, never
// changes it.
func TestServiceTableIsASnapshotHandleReplaces(t *testing.T) {
	s := NewServer("db")
	noop := func(context.Context, *Request) ([]byte, error) { return nil, nil }
	h1, err := s.HandleFunc("@one", noop)
	if err != nil {
		t.Fatal(err)
	}
	before := s.services.Load()
	h2, err := s.HandleFunc(".two", noop)
	if err != nil {
		t.Fatal(err)
	}
	after := s.services.Load()
	if before == after {
		t.Fatal("Handle changed the table in place")
	}
	if len(before.byName) != 1 || before.byHandle[h2] != nil {
		t.Fatalf("the old snapshot changed: %d names", len(before.byName))
	}
	if after.byName["@one"] != before.byName["@one"] || after.byHandle[h1] == nil || after.byName[".two"].handle != h2 {
		t.Fatal("the new table lost or renumbered a service")
	}
	if h2 != h1+1 || after.byName[".two"].handleName != ":00000002" {
		t.Fatalf("handles %d, %d; want consecutive from 1", h1, h2)
	}
}

// A sequential service's handler runs on the connection's reader when
// nothing else waits for it; one that waits for a later message of its own
// connection must still get it (the reader hands reading to a new
// goroutine), and the connection's other services keep answering.
func TestHandlerWaitingForALaterMessageOfItsConnection(t *testing.T) {
	s := NewServer("node-a")
	arrived := make(chan struct{})
	srvMustHandle(t, s, "@waiter", func(ctx context.Context, req *Request) ([]byte, error) {
		select {
		case <-arrived:
			return []byte("woken"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	srvMustHandle(t, s, "@waker", func(context.Context, *Request) ([]byte, error) {
		close(arrived)
		return []byte("woke"), nil
	})
	srvMustHandle(t, s, "@echo", srvEcho)
	addr, _ := srvServe(t, s)
	c := srvDial(t, addr)

	waiter := c.send(wire.Request{Name: "@waiter"})
	if resp := c.call(wire.Request{Name: "@echo", Payload: []byte("meanwhile")}); string(resp.Payload) != "meanwhile" {
		t.Fatalf("@echo while @waiter runs: %+v", resp)
	}
	waker := c.send(wire.Request{Name: "@waker"})
	got := map[uint32]string{}
	for range 2 {
		resp := c.read()
		got[resp.Session] = string(resp.Payload)
	}
	if got[waiter] != "woken" || got[waker] != "woke" {
		t.Fatalf("replies %v, want @waiter woken by the later @waker", got)
	}
}
