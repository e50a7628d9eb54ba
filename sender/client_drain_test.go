package sender

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
)

// A pod being replaced: the registry says Draining. Nothing new is written
// to its connection; the call already written there gets its reply; what
// is sent meanwhile waits in the FIFO and reaches the replacement, in
// order, once it is Ready and confirmed; the old connection closes once its
// calls are answered, so the old pod's Shutdown is not kept waiting.
func TestDrainingNodeHoldsNewMessagesForTheReplacement(t *testing.T) {
	old := ctServeAt(t, "game", "127.0.0.1:0", server.WithIncarnation("uid-a"))
	reg := registry.NewStatic(nil)
	reg.SetIncarnation("game", old.addr, "uid-a")
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)

	before := testkit.Seq("before", 20)
	ctSendAll(t, ctx, c, "game", before)
	inFlight := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "game", "@slow", []byte("in-flight"))
		inFlight <- err
	}()
	testkit.Eventually(t, "the slow call is being handled by the old pod", func() bool { return old.slowIn.Load() == 1 })

	reg.SetDraining("game", old.addr, "uid-a")
	testkit.Eventually(t, "the client stops using the draining connection", func() bool { return c.State("game") != StateReady })
	during := testkit.Seq("during", 50)
	ctSendAll(t, ctx, c, "game", during)
	if q := ctQueued(c, "game"); q < len(during) {
		t.Fatalf("%d messages queued after the drain began, want the %d sent since (nothing new written to the draining pod)", q, len(during))
	}

	close(old.release)
	if err := <-inFlight; err != nil {
		t.Fatalf("the call written before the drain failed: %v", err)
	}
	testkit.Eventually(t, "the old connection closes once its call is answered", func() bool { return old.conns() == 0 })
	// @slow and @rec are different services: their order across the two
	// is the Server's business; each keeps its own.
	ctEqual(t, "old pod", without(old.received(), "in-flight"), before)

	repl := ctServeAt(t, "game", "127.0.0.1:0", server.WithIncarnation("uid-b"))
	reg.SetIncarnation("game", repl.addr, "uid-b")
	after := testkit.Seq("after", 10)
	ctSendAll(t, ctx, c, "game", after)
	if _, err := c.Call(ctx, "game", "@rec", []byte("last")); err != nil {
		t.Fatal(err)
	}
	ctEqual(t, "replacement", repl.received(), append(append(append([]string(nil), during...), after...), "last"))
	ctEqual(t, "old pod after the drain", without(old.received(), "in-flight"), before)
}

// A replaced pod that got the old pod's IP is a new node: the connection
// to the old incarnation is not reused, and a peer answering with another
// incarnation than the registry names is refused until they agree.
func TestNewIncarnationAtTheSameAddressIsANewNode(t *testing.T) {
	a := ctServeAt(t, "game", "127.0.0.1:0", server.WithIncarnation("uid-a"))
	reg := registry.NewStatic(nil)
	reg.SetIncarnation("game", a.addr, "uid-a")
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	if _, err := c.Call(ctx, "game", "@rec", []byte("to-a")); err != nil {
		t.Fatal(err)
	}

	// The registry names a new incarnation at the same address, but the
	// process there is still uid-a: the client drops its connection and
	// refuses to confirm the old process as the new one.
	reg.SetIncarnation("game", a.addr, "uid-b")
	testkit.Eventually(t, "the connection to the old incarnation is dropped", func() bool { return a.conns() == 0 })
	if err := c.Send(ctx, "game", "@rec", []byte("for-b")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the refusal is the node's last error", func() bool {
		err := lastError(c, "game")
		return errors.Is(err, ErrWrongNode) && strings.Contains(err.Error(), `incarnation "uid-a"`)
	})
	ctEqual(t, "old incarnation", a.received(), []string{"to-a"})

	// The new incarnation takes over the address: the message waiting for
	// it is delivered there, to it alone.
	addr := a.addr
	a.srv.Close()
	b := ctServeAt(t, "game", addr, server.WithIncarnation("uid-b"))
	if _, err := c.Call(ctx, "game", "@rec", []byte("to-b")); err != nil {
		t.Fatal(err)
	}
	ctEqual(t, "new incarnation", b.received(), []string{"for-b", "to-b"})
}

// Without server.WithIncarnation a Server reports the incarnation in
// SKYCALL_INCARNATION (set from the pod's UID by the downward API).
func TestServerIncarnationFromTheEnvironment(t *testing.T) {
	t.Setenv(server.EnvIncarnation, "uid-env")
	p := ctServe(t, "game")
	reg := registry.NewStatic(nil)
	reg.SetIncarnation("game", p.addr, "uid-other")
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	if err := c.Send(ctx, "game", "@rec", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the peer's incarnation from the environment is checked", func() bool {
		err := lastError(c, "game")
		return errors.Is(err, ErrWrongNode) && strings.Contains(err.Error(), `incarnation "uid-env"`)
	})
	reg.SetIncarnation("game", p.addr, "uid-env")
	testkit.Eventually(t, "the message is delivered once the registry agrees", func() bool { return p.count() == 1 })
}

// without returns msgs without drop.
func without(msgs []string, drop string) []string {
	var out []string
	for _, m := range msgs {
		if m != drop {
			out = append(out, m)
		}
	}
	return out
}

// lastError is the node's last connection error.
func lastError(c *Client, nodeName string) error {
	n := ctNode(c, nodeName)
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastErr
}

// A call written to a draining pod that never answers does not keep the
// old connection open (nor the old pod's Shutdown waiting) beyond the call
// timeout: the connection closes and the call fails, while what was sent
// after the drain began still waits for the replacement.
func TestDrainingConnectionClosesWithinTheCallTimeout(t *testing.T) {
	old := ctServeAt(t, "game", "127.0.0.1:0", server.WithIncarnation("uid-a"))
	reg := registry.NewStatic(nil)
	reg.SetIncarnation("game", old.addr, "uid-a")
	c := ctNewClient(t, reg, WithCallTimeout(300*time.Millisecond))
	ctx := ctCtx(t)
	stuck := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "game", "@slow", []byte("never answered"))
		stuck <- err
	}()
	testkit.Eventually(t, "the call is being handled by the old pod", func() bool { return old.slowIn.Load() == 1 })
	reg.SetDraining("game", old.addr, "uid-a")
	testkit.Eventually(t, "the client stops using the draining connection", func() bool { return c.State("game") != StateReady })
	if err := c.Send(ctx, "game", "@rec", []byte("held")); err != nil {
		t.Fatal(err)
	}
	if err := <-stuck; err == nil {
		t.Fatal("a call that was never answered succeeded")
	}
	testkit.Eventually(t, "the draining connection is closed", func() bool { return old.conns() == 0 })
	if q := ctQueued(c, "game"); q != 1 {
		t.Fatalf("%d messages queued, want the one sent after the drain began", q)
	}
}
