package sender

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
)

// deepPayload is a message nested 200,000 tables deep, 400 KB: the one that
// crashes a skynet node (docs/reliability.md).
func deepPayload() []byte {
	const k = 200000
	b := append(bytes.Repeat([]byte{0x0e}, k), 0x0a, 0x01)
	return append(b, bytes.Repeat([]byte{0x00}, k)...)
}

// TestServerRefusesADeeplyNestedMessageAndServesTheNext sends the 400 KB
// message to a handler that unpacks it, and as a query (the Server unpacks
// those itself): each gets an error reply, and the connection and the
// service answer the next call.
func TestServerRefusesADeeplyNestedMessageAndServesTheNext(t *testing.T) {
	s := server.New("db")
	sendertest.Handle(t, s, "@store", func(_ context.Context, req *server.Request) ([]byte, error) {
		vals, err := luaseri.Unpack(req.Payload)
		if err != nil {
			return nil, err
		}
		return luaseri.Pack(vals...)
	})
	addr := sendertest.Serve(t, s)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": addr}))
	ctx := ctCtx(t)
	deep := deepPayload()

	_, err := c.Call(ctx, "db", "@store", deep)
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "tables nested deeper than 32") {
		t.Fatalf("deep call: %v, want a RemoteError saying the tables are nested too deep", err)
	}
	want := testkit.Pack(t, "next", int64(1))
	if reply, err := c.Call(ctx, "db", "@store", want); err != nil || !bytes.Equal(reply, want) {
		t.Fatalf("the call after: %q, %v; want it answered", reply, err)
	}

	raw := testkit.Dial(t, addr)
	if resp := raw.Call(wire.Request{Address: 0, Payload: deep}); resp.OK || string(resp.Payload) != "name not found" {
		t.Fatalf("deep query: ok=%v %q, want the error reply \"name not found\"", resp.OK, resp.Payload)
	}
	if resp := raw.Call(wire.Request{Address: 0, Payload: testkit.Pack(t, wire.NodeQueryName)}); !resp.OK {
		t.Fatalf("the query after: error %q, want the node's name", resp.Payload)
	}
}

// TestClientRefusesADeeplyNestedReply: CallValues (the agent's status call
// among others) returns a typed error for a reply nested too deep, and the
// node goes on working.
func TestClientRefusesADeeplyNestedReply(t *testing.T) {
	deep := deepPayload()
	s := server.New("db")
	sendertest.Handle(t, s, "@deep", func(context.Context, *server.Request) ([]byte, error) { return deep, nil })
	sendertest.Handle(t, s, "@echo", sendertest.Echo)
	addr := sendertest.Serve(t, s)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": addr}))
	ctx := ctCtx(t)

	_, err := c.CallValues(ctx, "db", "@deep", "status")
	if !errors.Is(err, luaseri.ErrTooDeep) || !strings.Contains(err.Error(), `reply from node "db" service @deep`) {
		t.Fatalf("deep reply: %v, want luaseri.ErrTooDeep naming the node and service", err)
	}
	if got, err := c.CallValues(ctx, "db", "@echo", "after"); err != nil || len(got) != 1 || got[0] != "after" {
		t.Fatalf("the call after: %v, %v", got, err)
	}
}
