package server

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/wire"
)

// TestServerRefusesADeeplyNestedMessageAndServesTheNext sends the 400 KB
// message to a handler that unpacks it, and as a query (the Server unpacks
// those itself): each gets an error reply, and the connection and the
// service answer the next call.
func TestServerRefusesADeeplyNestedMessageAndServesTheNext(t *testing.T) {
	s := New("db")
	mustHandle(t, s, "@store", func(_ context.Context, req *Request) ([]byte, error) {
		vals, err := luaseri.Unpack(req.Payload)
		if err != nil {
			return nil, err
		}
		return luaseri.Pack(vals...)
	})
	addr, _ := serveTest(t, s)
	c := sender.New(registry.NewStatic(map[string]string{"db": addr}))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	deep := testkit.DeepPayload()

	_, err := c.Call(ctx, "db", "@store", deep)
	var re *sender.RemoteError
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
