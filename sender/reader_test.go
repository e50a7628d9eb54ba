package sender

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
)

// A caller whose call is alone in flight reads its own reply
// (reader.go). These tests give that caller what can end its read
// early, and check that the connection goes on for everyone.

// While a lone call's caller reads, a second call is answered (read by
// that caller, or handed on), the first call's cancellation returns at
// once, and the connection keeps working. The server side: a Concurrent
// handler that blocks on the reader goroutine does not hold up the
// connection's next message.
func TestCallerReadingItsReplyCancelledLeavesTheConnectionWorking(t *testing.T) {
	peer, c, ctx := ctServeCallersRead(t)
	slowCtx, cancelSlow := context.WithCancel(ctx)
	slow := make(chan error, 1)
	go func() {
		_, err := c.Call(slowCtx, "db", "@slow", []byte("blocked"))
		slow <- err
	}()
	testkit.Eventually(t, "the slow call reached the server", func() bool { return peer.slowIn.Load() == 1 })
	for i := range 5 {
		m := fmt.Sprint("beside-", i)
		if reply, err := c.Call(ctx, "db", "@rec", []byte(m)); err != nil || string(reply) != m {
			t.Fatalf("call beside a blocked one = %q, %v; want %q", reply, err, m)
		}
	}
	start := time.Now()
	cancelSlow()
	select {
	case err := <-slow:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "sent") {
			t.Fatalf("cancelled call: %v, want context.Canceled after it was sent", err)
		}
	case <-time.After(ctTimeout):
		t.Fatal("a cancelled call whose caller was reading did not return")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the cancelled call returned after %v", d)
	}
	close(peer.release) // its late reply comes now and is dropped
	for i := range 20 {
		m := fmt.Sprint("after-", i)
		if reply, err := c.Call(ctx, "db", "@rec", []byte(m)); err != nil || string(reply) != m {
			t.Fatalf("call after the cancelled one = %q, %v; want %q", reply, err, m)
		}
	}
}

// A reply cut in two by the interruption of the caller reading it is
// finished by the next reader: the connection stays in sync, and the next
// call gets its own reply.
func TestReplyCutByAnInterruptedReaderIsFinishedByTheNext(t *testing.T) {
	p := ctScriptPeer(t)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": p.addr}))
	ctx := ctCtx(t)
	call := func(payload string) <-chan error {
		res := make(chan error, 1)
		go func() {
			got, err := c.Call(ctx, "db", "@echo", []byte(payload))
			if err == nil && string(got) != payload {
				err = fmt.Errorf("reply %q, want %q", got, payload)
			}
			res <- err
		}()
		req := testkit.Recv(t, "the request "+payload, p.reqs)
		p.write(t, wire.AppendResponse(nil, &wire.Response{Session: req.Session, OK: true, Payload: req.Payload}))
		return res
	}
	ctCallUntilCallersRead(t, c, ctx, func(i int) error {
		return testkit.Recv(t, "a warm-up call", call(fmt.Sprint("warm-", i)))
	})

	first, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(first, "db", "@echo", []byte("first"))
		done <- err
	}()
	req := testkit.Recv(t, "the first request", p.reqs)
	reply := wire.AppendResponse(nil, &wire.Response{Session: req.Session, OK: true, Payload: []byte(strings.Repeat("x", 3000))})
	p.write(t, reply[:3]) // the header and one byte
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := testkit.Recv(t, "the first call's result", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", err)
	}
	p.write(t, reply[3:]) // the rest of the late reply: dropped

	if err := testkit.Recv(t, "the call after the cut reply", call("second")); err != nil {
		t.Fatalf("call after a cut reply: %v", err)
	}
	if got := p.conns(); got != 1 {
		t.Fatalf("%d connections, want 1: the cut reply broke the connection", got)
	}
}

// Once callers have read their own replies and nothing is in flight,
// somebody still reads: a peer that closes the idle connection is seen
// without a call.
func TestIdleConnectionClosedByThePeerIsSeenAfterCallersRead(t *testing.T) {
	peer, c, _ := ctServeCallersRead(t)
	peer.srv.Close()
	testkit.Eventually(t, "the node is no longer ready", func() bool { return c.State("db") != StateReady })
}

// A lone call that lasts costs the connection no wake-ups: the reader
// goroutine waits for its caller to end reading, not for a timer.
func TestLongLoneCallCostsNoWakeUps(t *testing.T) {
	peer, c, ctx := ctServeCallersRead(t)
	slow := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "db", "@slow", []byte("long"))
		slow <- err
	}()
	testkit.Eventually(t, "the slow call reached the server", func() bool { return peer.slowIn.Load() == 1 })
	conn := ctConn(c, "db")
	lulls := func() uint64 {
		conn.rd.mu.Lock()
		defer conn.rd.mu.Unlock()
		return conn.rd.lulls
	}
	before := lulls()
	time.Sleep(100 * readLull)
	if n := lulls() - before; n > 1 {
		t.Fatalf("the reader goroutine woke for %d lulls while one call lasted %v; want at most 1", n, 100*readLull)
	}
	close(peer.release)
	if err := testkit.Recv(t, "the long call's result", slow); err != nil {
		t.Fatal(err)
	}
}

// ctConn is the node's ready connection, or nil.
func ctConn(c *Client, nodeName string) *nodeConn {
	n := ctNode(c, nodeName)
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.conn
}

// ctServeCallersRead starts a ctPeer named "db" and a Client whose next
// lone call to it is read by its own caller.
func ctServeCallersRead(t *testing.T) (*ctPeer, *Client, context.Context) {
	t.Helper()
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)
	ctCallUntilCallersRead(t, c, ctx, func(i int) error {
		_, err := c.Call(ctx, "db", "@rec", []byte(fmt.Sprint("warm-", i)))
		return err
	})
	return peer, c, ctx
}

// ctCallUntilCallersRead makes calls with call until the reader goroutine
// of node "db" has left the read role to callers: the next lone call's
// caller reads its own reply. The first calls of a connection are read by
// the reader goroutine.
func ctCallUntilCallersRead(t *testing.T, c *Client, ctx context.Context, call func(i int) error) {
	t.Helper()
	for i := 0; i < 2 || !ctReaderYielded(c, "db"); i++ {
		if err := call(i); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("the reader goroutine never left the read role to callers")
		}
	}
}

// ctReaderYielded reports whether the connection's reader goroutine left
// the read role to callers: the next lone call's caller reads its reply.
func ctReaderYielded(c *Client, nodeName string) bool {
	conn := ctConn(c, nodeName)
	if conn == nil {
		return false
	}
	conn.rd.mu.Lock()
	defer conn.rd.mu.Unlock()
	return conn.rd.holder == readNone
}

// ctScript is a skynet-like peer whose replies the test writes: it
// answers the Client's confirmation itself and hands every other request
// to the test.
type ctScript struct {
	addr string
	reqs chan *wire.Request
	nc   chan net.Conn
	open []net.Conn
}

func ctScriptPeer(t *testing.T) *ctScript {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ctScript{addr: l.Addr().String(), reqs: make(chan *wire.Request, 16), nc: make(chan net.Conn, 16)}
	t.Cleanup(func() {
		l.Close()
		for _, c := range p.open {
			c.Close()
		}
	})
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			p.nc <- nc
			go func() {
				dec := wire.NewRequestDecoder(bufio.NewReader(nc), wire.Limits{})
				for {
					req, err := dec.Next()
					if err != nil {
						return
					}
					if req.Address == 0 && req.Name == "" { // the confirmation
						nc.Write(wire.AppendResponse(nil, &wire.Response{Session: req.Session, Payload: []byte("name not found")}))
						continue
					}
					r := *req
					r.Payload = append([]byte(nil), req.Payload...)
					p.reqs <- &r
				}
			}()
		}
	}()
	return p
}

// conns is how many connections the peer accepted.
func (p *ctScript) conns() int {
	for {
		select {
		case nc := <-p.nc:
			p.open = append(p.open, nc)
		default:
			return len(p.open)
		}
	}
}

// write writes b on the peer's only connection.
func (p *ctScript) write(t *testing.T, b []byte) {
	t.Helper()
	if p.conns() != 1 {
		t.Fatalf("%d connections, want 1", len(p.open))
	}
	if _, err := p.open[0].Write(b); err != nil {
		t.Fatal(err)
	}
}

// Calls that end every way a reading caller can stop: replies, cancels,
// deadlines and default timeouts, alone and side by side, with stale
// interrupts landing on whoever reads next. Every call returns its own
// echo or its ctx's or timeout's error, and the connection stays in sync.
func TestCallersReadingAndGivingUpKeepEveryReplyItsOwn(t *testing.T) {
	srv := server.New("db")
	if _, err := srv.HandleFunc("@echo", func(ctx context.Context, req *server.Request) ([]byte, error) {
		// A delay of 0 to 3 ms, chosen by the caller, so that some
		// replies come after their caller gave up.
		if d := time.Duration(req.Payload[0]%4) * time.Millisecond; d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		return req.Payload, nil
	}, server.WithConcurrent()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": l.Addr().String()}), WithCallTimeout(2*time.Millisecond))
	ctx := ctCtx(t)
	if _, err := c.Call(ctx, "db", "@echo", []byte{0}); err != nil {
		t.Fatal(err)
	}
	for _, callers := range []int{1, 3} { // alone, every call's caller reads
		callersGivingUp(t, c, ctx, callers, 300)
	}
	if got := ctCounter(t, c, "skycall_sender_reconnects_total", "db", ""); got != 0 {
		t.Fatalf("%v reconnects: the connection fell out of sync", got)
	}
}

// callersGivingUp runs calls calls from each of callers goroutines, their
// ends mixed as TestCallersReadingAndGivingUpKeepEveryReplyItsOwn says.
func callersGivingUp(t *testing.T, c *Client, ctx context.Context, callers, calls int) {
	t.Helper()
	errs := make(chan error, callers)
	for g := range callers {
		go func() {
			for i := range calls {
				k := g*calls + i
				payload := fmt.Appendf([]byte{byte(k)}, "-%d-%d", g, i)
				var cctx context.Context
				var cancel context.CancelFunc
				switch k % 5 {
				case 0, 1: // no deadline: the default timeout (2 ms)
					cctx, cancel = ctx, func() {}
				case 2:
					cctx, cancel = context.WithTimeout(ctx, time.Duration(k%3)*time.Millisecond+500*time.Microsecond)
				case 3:
					cctx, cancel = context.WithCancel(ctx)
					time.AfterFunc(time.Duration(k%4)*time.Millisecond, cancel)
				default:
					cctx, cancel = context.WithTimeout(ctx, time.Second)
				}
				reply, err := c.Call(cctx, "db", "@echo", payload)
				cancel()
				switch {
				case err == nil && !bytes.Equal(reply, payload):
					errs <- fmt.Errorf("call %d: reply %q, want %q", k, reply, payload)
					return
				case err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
					errs <- fmt.Errorf("call %d: %v", k, err)
					return
				}
				if k%5 == 4 && err != nil {
					errs <- fmt.Errorf("call %d with a second to go: %v", k, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := testkit.Recv(t, "a caller's calls", errs); err != nil {
			t.Fatalf("%d callers: %v", callers, err)
		}
	}
}

func TestInflightEachCallIsTakenOnce(t *testing.T) {
	tab := newInflight()
	calls := make([]*call, 100)
	for i := range calls {
		calls[i] = &call{session: uint32(i + 1)}
		tab.add(calls[i])
	}
	// The reader, a withdrawal and a failure race for every call: exactly
	// one of them must win it, or a caller is woken twice or never.
	var mu sync.Mutex
	won := map[*call]int{}
	win := func(w *call) {
		mu.Lock()
		won[w]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for s := uint32(1); s <= 100; s++ {
			if w := tab.take(s); w != nil {
				win(w)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for _, w := range calls {
			if tab.remove(w) {
				win(w)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for _, w := range tab.takeIf(nil, func(*call) bool { return true }) {
			win(w)
		}
	}()
	wg.Wait()
	for _, w := range calls {
		if won[w] != 1 {
			t.Fatalf("call %d taken %d times, want once", w.session, won[w])
		}
	}
	if tab.len() != 0 {
		t.Fatalf("%d calls left", tab.len())
	}
}

func TestInflightRemoveIgnoresAReusedSession(t *testing.T) {
	tab := newInflight()
	old, cur := &call{session: 7}, &call{session: 7}
	tab.add(cur)
	if tab.remove(old) {
		t.Fatal("removed another call under the same session")
	}
	if !tab.any(func(w *call) bool { return w == cur }) {
		t.Fatal("the current call is gone")
	}
	if got := tab.appendIf(nil, func(w *call) bool { return w.session == 7 }); len(got) != 1 || tab.len() != 1 {
		t.Fatal("appendIf must not remove")
	}
}
