package sender

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
)

// ackPeer confirms connections as a skycall Server named node does, counts
// the pushes it reads and echoes calls, but for calls to @hang, which it
// never answers. It answers the node query that confirms a connection;
// later node queries (the Client's probes) it answers while answer is set,
// and otherwise ignores, or, with closeOnProbe, answers by closing the
// connection.
type ackPeer struct {
	addr         string
	closeOnProbe bool
	answer       atomic.Bool
	pushes       atomic.Int64
	unanswered   atomic.Int64 // probes read and not answered
	hung         atomic.Int64 // calls to @hang read
	open         atomic.Int32 // connections not yet closed
}

func ackServe(t *testing.T, node string, closeOnProbe bool) *ackPeer {
	t.Helper()
	p := &ackPeer{closeOnProbe: closeOnProbe}
	p.answer.Store(true)
	name, _ := luaseri.Pack(node)
	p.addr = ctListen(t, func(nc net.Conn) {
		p.open.Add(1)
		defer p.open.Add(-1)
		defer nc.Close() // closed before it counts as closed
		p.serve(nc, name)
	})
	return p
}

func (p *ackPeer) serve(nc net.Conn, name []byte) {
	dec := wire.NewRequestDecoder(bufio.NewReader(nc), wire.Limits{})
	confirmed := false
	for {
		req, err := dec.Next()
		if err != nil {
			return
		}
		if req.Push {
			p.pushes.Add(1)
			continue
		}
		if req.Name == "@hang" {
			p.hung.Add(1)
			continue
		}
		resp := &wire.Response{Session: req.Session, OK: true, Payload: req.Payload}
		if req.Address == 0 && req.Name == "" {
			if confirmed && !p.answer.Load() {
				p.unanswered.Add(1)
				if p.closeOnProbe {
					return
				}
				continue
			}
			confirmed = true
			resp.Payload = name
		}
		if _, err := nc.Write(wire.AppendResponse(nil, resp)); err != nil {
			return
		}
	}
}

// A node sent only pushes (no call, so no reply proves them) is drained to
// a replacement, as in a rolling restart: the old connection proves its
// pushes with a probe before it closes, so a clean drain counts none of
// them as unconfirmed, and every push arrives where it was sent.
func TestCleanDrainOfPushesCountsNoneUnconfirmed(t *testing.T) {
	old := ctServeAt(t, "game", "127.0.0.1:0", server.WithIncarnation("uid-a"))
	reg := registry.NewStatic(nil)
	reg.SetIncarnation("game", old.addr, "uid-a")
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)

	before := testkit.Seq("before", 700)
	ctSendAll(t, ctx, c, "game", before)
	testkit.Eventually(t, "the old pod read every push", func() bool { return old.count() == len(before) })

	reg.SetDraining("game", old.addr, "uid-a")
	testkit.Eventually(t, "the drained connection closes", func() bool { return old.conns() == 0 })
	held := testkit.Seq("held", 20)
	ctSendAll(t, ctx, c, "game", held)
	repl := ctServeAt(t, "game", "127.0.0.1:0", server.WithIncarnation("uid-b"))
	reg.SetIncarnation("game", repl.addr, "uid-b")
	after := testkit.Seq("after", 20)
	ctSendAll(t, ctx, c, "game", after)
	testkit.Eventually(t, "the replacement read the pushes held and sent since", func() bool { return repl.count() == len(held)+len(after) })

	ctEqual(t, "old pod", old.received(), before)
	ctEqual(t, "replacement", repl.received(), append(held, after...))
	if got := ctCounter(t, c, "skycall_sender_dropped_total", "game", ""); got != 0 {
		t.Fatalf("a clean drain of %d pushes counted %v dropped (unconfirmed %v), want 0",
			len(before), got, ctCounter(t, c, "skycall_sender_dropped_total", "game", dropUnconfirmed))
	}
}

// ackPushesThenGoQuiet sends n pushes to node on p after a call (so that
// no watchdog probe is due for a while), waits until p read them, and from
// then on p answers no probe.
func ackPushesThenGoQuiet(t *testing.T, c *Client, p *ackPeer, node string, n int) {
	t.Helper()
	ctx := ctCtx(t)
	if _, err := c.Call(ctx, node, "@echo", []byte("first")); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := c.Send(ctx, node, "@rec", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "the peer read every push", func() bool { return p.pushes.Load() == int64(n) })
	p.answer.Store(false)
}

// A draining peer that read the pushes but never answers the probe, or
// closes the connection on it, has them counted unconfirmed: the probe was
// asked for, and only what it could not prove is counted.
func TestDrainCountsThePushesAProbeCannotProve(t *testing.T) {
	const d = time.Second
	for _, tc := range []struct {
		name         string
		closeOnProbe bool
	}{
		{"never answers the probe", false},
		{"closes the connection on the probe", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ackServe(t, "game", tc.closeOnProbe)
			reg := registry.NewStatic(map[string]string{"game": p.addr})
			c := ctNewClient(t, reg, WithPeerTimeout(d))
			const pushes = 50
			ackPushesThenGoQuiet(t, c, p, "game", pushes)

			start := time.Now()
			reg.SetDraining("game", p.addr, "")
			testkit.Eventually(t, "the drained connection closes", func() bool { return p.open.Load() == 0 })
			took := time.Since(start)
			testkit.Eventually(t, "the pushes no reply proved are counted unconfirmed", func() bool {
				return ctCounter(t, c, "skycall_sender_dropped_total", "game", dropUnconfirmed) == pushes
			})
			if got := p.unanswered.Load(); got != 1 {
				t.Fatalf("the peer read %d unanswered probes, want the drain's one", got)
			}
			t.Logf("drained connection closed %v after the drain began (WithPeerTimeout(%v))", took.Round(time.Millisecond), d)
			if limit := d + 2*time.Second; took > limit {
				t.Errorf("closed after %v, bound %v", took, d)
			}
		})
	}
}

// A drain whose only call is abandoned (its ctx ends) does not wait for
// the drain's call timeout: it proves its pushes and closes at once.
func TestDrainWhoseCallIsAbandonedProvesItsPushes(t *testing.T) {
	p := ackServe(t, "game", false)
	reg := registry.NewStatic(map[string]string{"game": p.addr})
	c := ctNewClient(t, reg, WithCallTimeout(time.Hour))
	ctx := ctCtx(t)
	const pushes = 25
	for i := range pushes {
		if err := c.Send(ctx, "game", "@rec", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	callCtx, cancel := context.WithCancel(ctx)
	call := make(chan error, 1)
	go func() {
		_, err := c.Call(callCtx, "game", "@hang", nil)
		call <- err
	}()
	testkit.Eventually(t, "the peer read the pushes and the call", func() bool {
		return p.pushes.Load() == pushes && p.hung.Load() == 1
	})
	reg.SetDraining("game", p.addr, "")
	testkit.Eventually(t, "the client stops using the draining connection", func() bool { return c.State("game") != StateReady })
	if p.open.Load() != 1 {
		t.Fatal("the drained connection closed with a call in flight")
	}
	cancel()
	if err := <-call; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned call: %v, want context.Canceled", err)
	}
	testkit.Eventually(t, "the drained connection closes", func() bool { return p.open.Load() == 0 })
	if got := ctCounter(t, c, "skycall_sender_dropped_total", "game", ""); got != 0 {
		t.Fatalf("%v pushes counted dropped, want 0: the probe proved them", got)
	}
}

// Close proves the pushes of a healthy connection before closing it: a
// clean shutdown counts none unconfirmed.
func TestCloseConfirmsPushesFirst(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)
	msgs := testkit.Seq("m", 300)
	ctSendAll(t, ctx, c, "db", msgs)
	testkit.Eventually(t, "the peer read every push", func() bool { return peer.count() == len(msgs) })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ctEqual(t, "received", peer.received(), msgs)
	if got := ctCounter(t, c, "skycall_sender_dropped_total", "db", ""); got != 0 {
		t.Fatalf("a clean Close after %d pushes counted %v dropped, want 0", len(msgs), got)
	}
}

// Close to a peer that does not answer the probe returns within the peer
// timeout and counts the pushes unconfirmed; a call in flight whose caller
// reads its own reply fails with ErrClosed at once all the same.
func TestCloseCountsThePushesAProbeCannotProve(t *testing.T) {
	const d = time.Second
	p := ackServe(t, "db", false)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": p.addr}), WithPeerTimeout(d))
	ctx := ctCtx(t)
	type result struct {
		err error
		at  time.Time
	}
	var call chan result
	for attempt := int64(1); ; attempt++ {
		ctCallUntilCallersRead(t, c, ctx, func(i int) error {
			_, err := c.Call(ctx, "db", "@echo", nil)
			return err
		})
		callCtx, cancel := context.WithCancel(ctx)
		call = make(chan result, 1)
		go func() {
			_, err := c.Call(callCtx, "db", "@hang", nil)
			call <- result{err, time.Now()}
		}()
		testkit.Eventually(t, "the peer read the call", func() bool { return p.hung.Load() == attempt })
		if ctCallerReads(c, "db") {
			defer cancel()
			break
		}
		cancel() // the reader goroutine read for it: try again
		<-call
	}
	const pushes = 40
	for i := range pushes {
		if err := c.Send(ctx, "db", "@rec", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "the peer read every push", func() bool { return p.pushes.Load() == pushes })
	p.answer.Store(false)

	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("Close returned after %v (WithPeerTimeout(%v))", took.Round(time.Millisecond), d)
	if limit := d + 2*time.Second; took > limit {
		t.Errorf("Close took %v, bound %v", took, d)
	}
	r := <-call
	if !errors.Is(r.err, ErrClosed) {
		t.Fatalf("call in flight at Close: %v, want ErrClosed", r.err)
	}
	if late := r.at.Sub(start); late > d/2 {
		t.Errorf("the call in flight failed %v after Close began, not at once", late.Round(time.Millisecond))
	}
	if got := p.unanswered.Load(); got != 1 {
		t.Fatalf("the peer read %d unanswered probes, want Close's one", got)
	}
	if got := ctCounter(t, c, "skycall_sender_dropped_total", "db", dropUnconfirmed); got != pushes {
		t.Fatalf("%v pushes counted unconfirmed, want %d", got, pushes)
	}
}

// ctCallerReads reports whether a caller holds the read role of the node's
// connection: it reads its own reply.
func ctCallerReads(c *Client, nodeName string) bool {
	conn := ctConn(c, nodeName)
	if conn == nil {
		return false
	}
	conn.rd.mu.Lock()
	defer conn.rd.mu.Unlock()
	return conn.rd.holder == readCaller
}

// A node forgotten while idle proves the pushes of its connection before
// closing it: none is counted unconfirmed.
func TestIdleCloseConfirmsPushesFirst(t *testing.T) {
	peer := ctServe(t, "db")
	logger, logs := testkit.Logger(t)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}),
		WithNodeIdleTimeout(100*time.Millisecond), WithLogger(logger))
	ctx := ctCtx(t)
	msgs := testkit.Seq("m", 300)
	ctSendAll(t, ctx, c, "db", msgs)
	testkit.Eventually(t, "the node is forgotten and its connection closed", func() bool {
		return ctNodeCount(c) == 0 && ctNodeGoroutines() == 0
	})
	ctEqual(t, "received", peer.received(), msgs)
	if got := ctCounter(t, c, "skycall_sender_dropped_total", "db", ""); got != 0 || logs.Contains("unconfirmed") {
		t.Fatalf("an idle close after %d pushes counted %v dropped (logged: %v), want 0", len(msgs), got, logs.Contains("unconfirmed"))
	}
}

// A node whose peer stops answering is not forgotten while idle before the
// probe that should prove its pushes is given up (within the peer timeout):
// then they are counted unconfirmed, as for any silent peer.
func TestIdleCloseCountsThePushesAProbeCannotProve(t *testing.T) {
	const d = 300 * time.Millisecond
	p := ackServe(t, "db", false)
	logger, logs := testkit.Logger(t)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": p.addr}),
		WithNodeIdleTimeout(100*time.Millisecond), WithPeerTimeout(d), WithLogger(logger))
	const pushes = 30
	ackPushesThenGoQuiet(t, c, p, "db", pushes)
	testkit.Eventually(t, "the probe goes unanswered and the pushes are counted", func() bool {
		return logs.Contains("never confirmed", `"unconfirmed"=30`)
	})
	if got := p.unanswered.Load(); got < 1 {
		t.Fatal("the connection closed without a probe")
	}
	testkit.Eventually(t, "the node is forgotten", func() bool { return ctNodeCount(c) == 0 })
}
