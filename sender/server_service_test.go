package sender

import (
	"context"
	"testing"
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
