package sender

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
)

// TestClientRefusesADeeplyNestedReply: CallValues (the agent's status call
// among others) returns a typed error for a reply nested too deep, and the
// node goes on working.
func TestClientRefusesADeeplyNestedReply(t *testing.T) {
	deep := testkit.DeepPayload()
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
