package sender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
)

// ctCountingRegistry counts what the Client asks of its registry.
type ctCountingRegistry struct {
	registry.Registry
	lookups, watches atomic.Int32
}

func (r *ctCountingRegistry) Lookup(node string) (registry.Entry, error) {
	r.lookups.Add(1)
	return r.Registry.Lookup(node)
}

func (r *ctCountingRegistry) Watch(node string, notify func()) func() {
	r.watches.Add(1)
	return r.Registry.Watch(node, notify)
}

func TestNothingResolvesOrConnectsBeforeFirstUse(t *testing.T) {
	peer := ctServeSkynet(t)
	reg := &ctCountingRegistry{Registry: registry.NewStatic(map[string]string{"db": peer.addr})}
	c := ctNewClient(t, reg)
	svc := c.Service("db", "@rec")
	_ = c.State("db")
	time.Sleep(20 * time.Millisecond) // give a wrongly eager Client the chance to act
	if n := reg.lookups.Load() + reg.watches.Load(); n != 0 {
		t.Fatalf("registry consulted %d times before any message", n)
	}
	if n := peer.conns.Load(); n != 0 {
		t.Fatalf("%d connections before any message", n)
	}
	if got := ctClientGoroutines(); got != 1 { // the call-timeout sweeper only
		t.Fatalf("%d Client goroutines before any message, want 1 (the sweeper)", got)
	}
	if _, err := svc.Call(ctCtx(t), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if reg.lookups.Load() == 0 || peer.conns.Load() != 1 {
		t.Fatalf("after the first call: %d lookups, %d connections; want >0 and 1", reg.lookups.Load(), peer.conns.Load())
	}
}

func TestCallQueuedBeforeReadyKeepsOrder(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(nil)
	reg.SetNotReady("db", "test: not yet")
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)

	// Alternate Sends and Calls, each Call from its own goroutine, waiting
	// until it is queued before issuing the next message.
	const n = 40
	want := testkit.Seq("m", n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, m := range want {
		if i%2 == 0 {
			if err := c.Send(ctx, "db", "@rec", []byte(m)); err != nil {
				t.Fatal(err)
			}
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reply, err := c.Call(ctx, "db", "@rec", []byte(m))
				if err == nil && string(reply) != m {
					err = fmt.Errorf("reply %q, want %q", reply, m)
				}
				errs <- err
			}()
		}
		testkit.Eventually(t, fmt.Sprintf("message %d is queued", i), func() bool { return ctQueued(c, "db") == i+1 })
	}
	if got := peer.count(); got != 0 {
		t.Fatalf("%d messages delivered while the node was not ready", got)
	}
	if st := c.State("db"); st != StateResolving {
		t.Fatalf("state %s while not ready, want resolving", st)
	}
	reg.Set("db", peer.addr)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "all messages delivered", func() bool { return peer.count() == n })
	ctEqual(t, "delivery order", peer.received(), want)
}

func TestSendsAcrossReadyTransitionKeepOrder(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(nil) // absent: callers wait
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	const n = 3000
	want := testkit.Seq("s", n)
	done := make(chan error, 1)
	go func() {
		for i, m := range want {
			var err error
			if i >= 100 && i%10 == 9 {
				_, err = c.Call(ctx, "db", "@rec", []byte(m))
			} else {
				err = c.Send(ctx, "db", "@rec", []byte(m))
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// Make the node ready while the sender is mid-stream.
	testkit.Eventually(t, "some messages queued", func() bool { return ctQueued(c, "db") >= 50 })
	reg.Set("db", peer.addr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "all delivered", func() bool { return peer.count() == n })
	ctEqual(t, "delivery order", peer.received(), want)
}

func TestConfirmRejectsWrongNode(t *testing.T) {
	wrong := ctServe(t, "cache")
	right := ctServe(t, "db")
	reg := registry.NewStatic(map[string]string{"db": wrong.addr})
	c := ctNewClient(t, reg)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "db", "@rec", []byte("first"))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrWrongNode) {
		t.Fatalf("call to a node whose address answers as another: %v; want a deadline error wrapping ErrWrongNode", err)
	}
	if !strings.Contains(err.Error(), `"cache"`) || !strings.Contains(err.Error(), "not sent") {
		t.Errorf("error %q should name the node found and say the call was not sent", err)
	}
	if wrong.count() != 0 {
		t.Fatalf("the wrong node received %q", wrong.received())
	}
	// A call queued now goes out once the registry is fixed.
	result := make(chan error, 1)
	go func() {
		_, err := c.Call(ctCtx(t), "db", "@rec", []byte("second"))
		result <- err
	}()
	testkit.Eventually(t, "the second call is queued", func() bool { return ctQueued(c, "db") == 1 })
	reg.Set("db", right.addr)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	ctEqual(t, "right node", right.received(), []string{"second"})
	ctEqual(t, "wrong node", wrong.received(), nil)
}

func TestConfirmAcceptsSkynetPeer(t *testing.T) {
	peer := ctServeSkynet(t)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"game": peer.addr}))
	reply, err := c.Call(ctCtx(t), "game", ".echo", []byte("hello"))
	if err != nil || string(reply) != "hello" {
		t.Fatalf("Call through a skynet peer = %q, %v", reply, err)
	}
	if st := c.State("game"); st != StateReady {
		t.Fatalf("state %s, want ready", st)
	}
}

func TestAbsentNodeWaitsThenDelivers(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(nil)
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	if err := c.Send(ctx, "db", "@rec", []byte("a")); err != nil {
		t.Fatalf("Send to an absent node: %v; want it queued", err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "db", "@rec", []byte("b"))
		result <- err
	}()
	testkit.Eventually(t, "both queued", func() bool { return ctQueued(c, "db") == 2 })

	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := c.Call(short, "db", "@rec", []byte("never")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call to an absent node past its deadline: %v", err)
	}
	reg.Set("db", peer.addr)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "delivered", func() bool { return peer.count() == 2 })
	ctEqual(t, "delivered", peer.received(), []string{"a", "b"})
}

func TestAbsentNodeNoWaitFailsFast(t *testing.T) {
	reg := registry.NewStatic(nil)
	reg.SetNoWait(true)
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	if err := c.Send(ctx, "ghost", "@rec", []byte("x")); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("Send: %v, want ErrUnknownNode", err)
	}
	start := time.Now()
	_, err := c.Call(ctx, "ghost", "@rec", []byte("x"))
	if !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("Call: %v, want ErrUnknownNode", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("no-wait failure took %v", d)
	}
	if !strings.Contains(err.Error(), `"ghost"`) {
		t.Errorf("error %q should name the node", err)
	}
}

func TestDownNodeFailsQueuedAndNewMessages(t *testing.T) {
	reg := registry.NewStatic(nil)
	reg.SetNotReady("db", "starting")
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	if err := c.Send(ctx, "db", "@rec", []byte("queued send")); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "db", "@rec", []byte("queued call"))
		result <- err
	}()
	testkit.Eventually(t, "both queued", func() bool { return ctQueued(c, "db") == 2 })
	reg.SetDown("db")
	if err := <-result; !errors.Is(err, ErrNodeDown) {
		t.Fatalf("queued call: %v, want ErrNodeDown", err)
	}
	if err := c.Send(ctx, "db", "@rec", []byte("x")); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("new Send: %v, want ErrNodeDown", err)
	}
	if _, err := c.Call(ctx, "db", "@rec", []byte("x")); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("new Call: %v, want ErrNodeDown", err)
	}
	if got := ctCounter(t, c, "skycall_sender_dropped_total", "db", "node_down"); got != 1 {
		t.Fatalf("dropped sends counted %v, want 1", got)
	}
	if st := c.State("db"); st != StateDown {
		t.Fatalf("state %s, want down", st)
	}
}

func TestDownNodeClosesConnection(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(map[string]string{"db": peer.addr})
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	if _, err := c.Call(ctx, "db", "@rec", []byte("warm")); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "db", "@slow", []byte("in flight"))
		result <- err
	}()
	testkit.Eventually(t, "the slow call reached the server", func() bool { return peer.slowIn.Load() == 1 })
	reg.SetDown("db")
	if err := <-result; !errors.Is(err, ErrNodeDown) {
		t.Fatalf("in-flight call when the node went down: %v, want ErrNodeDown", err)
	}
	v, _ := c.nodes.Load("db")
	n := v.(*node)
	n.mu.Lock()
	conn := n.conn
	n.mu.Unlock()
	if conn != nil {
		t.Fatal("connection still in place after the node went down")
	}
	// Brought back up, it reconnects.
	reg.Set("db", peer.addr)
	if _, err := c.Call(ctx, "db", "@rec", []byte("back")); err != nil {
		t.Fatal(err)
	}
}

func TestQueueFullBlocksUntilRoom(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(nil)
	reg.SetNotReady("db", "")
	c := ctNewClient(t, reg, WithQueueLimit(2))
	ctx := ctCtx(t)
	ctSendAll(t, ctx, c, "db", []string{"1", "2"})
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := c.Send(short, "db", "@rec", []byte("timed out")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send to a full queue past its deadline: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Send(ctx, "db", "@rec", []byte("3")) }()
	select {
	case err := <-done:
		t.Fatalf("Send to a full queue returned %v before there was room", err)
	case <-time.After(30 * time.Millisecond):
	}
	reg.Set("db", peer.addr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "delivered", func() bool { return peer.count() == 3 })
	ctEqual(t, "delivered", peer.received(), []string{"1", "2", "3"})
}

func TestQueueFullFailsFastWithOption(t *testing.T) {
	reg := registry.NewStatic(nil)
	c := ctNewClient(t, reg, WithQueueLimit(1), WithQueueFullError())
	ctx := ctCtx(t)
	if err := c.Send(ctx, "db", "@rec", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "db", "@rec", []byte("2")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send: %v, want ErrQueueFull", err)
	}
	if _, err := c.Call(ctx, "db", "@rec", []byte("3")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Call: %v, want ErrQueueFull", err)
	}
}

func TestQueueBytesBound(t *testing.T) {
	reg := registry.NewStatic(nil)
	c := ctNewClient(t, reg, WithQueueBytes(100), WithQueueFullError())
	ctx := ctCtx(t)
	// One message over the bound is accepted into an empty queue.
	if err := c.Send(ctx, "db", "@rec", make([]byte, 150)); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "db", "@rec", []byte("x")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send past the byte bound: %v, want ErrQueueFull", err)
	}
}

func TestQueuedCallCanceledIsNotSent(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(nil)
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	if err := c.Send(ctx, "db", "@rec", []byte("before")); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() {
		_, err := c.Call(cctx, "db", "@rec", []byte("canceled"))
		result <- err
	}()
	testkit.Eventually(t, "the call is queued", func() bool { return ctQueued(c, "db") == 2 })
	cancel()
	err := <-result
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("canceled queued call: %v; want context.Canceled saying it was not sent", err)
	}
	if q := ctQueued(c, "db"); q != 1 {
		t.Fatalf("queue holds %d messages after the cancel, want 1", q)
	}
	if err := c.Send(ctx, "db", "@rec", []byte("after")); err != nil {
		t.Fatal(err)
	}
	reg.Set("db", peer.addr)
	testkit.Eventually(t, "delivered", func() bool { return peer.count() == 2 })
	time.Sleep(10 * time.Millisecond)
	ctEqual(t, "delivered", peer.received(), []string{"before", "after"})
}

func TestCallDeadlineInFlightDiscardsLateReply(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := c.Call(short, "db", "@slow", []byte("late"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "sent") {
		t.Fatalf("in-flight call past its deadline: %v", err)
	}
	close(peer.release) // the late reply arrives now and must be discarded
	for i := 0; i < 20; i++ {
		m := fmt.Sprint("next-", i)
		reply, err := c.Call(ctx, "db", "@rec", []byte(m))
		if err != nil || string(reply) != m {
			t.Fatalf("call after a late reply = %q, %v; want %q", reply, err, m)
		}
	}
}

func TestDefaultCallTimeout(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}), WithCallTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := c.Call(context.Background(), "db", "@slow", []byte("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call without deadline to a silent service: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("default timeout fired after %v, want about 100ms", d)
	}
	// Also while queued for an absent node.
	start = time.Now()
	_, err = c.Call(context.Background(), "nowhere", "@rec", []byte("x"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("queued call without deadline: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("default timeout while queued fired after %v", d)
	}
}

func TestRemoteErrorCarriesText(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)
	_, err := c.Call(ctx, "db", "@fail", []byte("disk full"))
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T), want *RemoteError", err, err)
	}
	if re.Node != "db" || re.Address != "@fail" || !strings.Contains(re.Message, "boom: disk full") {
		t.Fatalf("RemoteError %+v", re)
	}
	_, err = c.Call(ctx, "db", "@nosuch", []byte("x"))
	if !errors.As(err, &re) || re.Message != "Invalid name" {
		t.Fatalf("call to an unknown service: %v", err)
	}
	// A push the node rejects has no caller left: it is counted.
	if err := c.Send(ctx, "db", "@nosuch", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the rejected push is counted", func() bool {
		return ctCounter(t, c, "skycall_sender_dropped_total", "db", "rejected") == 1
	})
}

func TestConnectionLostFailsInFlightAndKeepsQueued(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(map[string]string{"db": peer.addr})
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	if err := c.Send(ctx, "db", "@rec", []byte("warm")); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "db", "@slow", []byte("in flight"))
		result <- err
	}()
	testkit.Eventually(t, "the slow call reached the server", func() bool { return peer.slowIn.Load() == 1 })
	peer.srv.Close()
	err := <-result
	if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), "may or may not") {
		t.Fatalf("in-flight call on a broken connection: %v, want ErrConnectionLost", err)
	}
	testkit.Eventually(t, "the node is no longer ready", func() bool { return c.State("db") != StateReady })
	// Messages sent while disconnected are queued and go out, in order,
	// once a server is back at the same address.
	want := testkit.Seq("q", 20)
	ctSendAll(t, ctx, c, "db", want)
	back := ctServeAt(t, "db", peer.addr)
	testkit.Eventually(t, "queued messages delivered after reconnect", func() bool { return back.count() == len(want) })
	ctEqual(t, "after reconnect", back.received(), want)
	if got := ctCounter(t, c, "skycall_sender_reconnects_total", "db", ""); got < 1 {
		t.Fatalf("reconnects counted %v, want >= 1", got)
	}
}

func TestReconnectBacksOffExponentially(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: every dial is refused
	var mu sync.Mutex
	var attempts []time.Time
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		mu.Lock()
		attempts = append(attempts, time.Now())
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	c := New(registry.NewStatic(map[string]string{"db": addr}), WithDialer(dial), WithBackoff(10*time.Millisecond, 200*time.Millisecond))
	defer c.Close()
	if err := c.Send(ctCtx(t), "db", "@rec", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "7 attempts", func() bool { mu.Lock(); defer mu.Unlock(); return len(attempts) >= 7 })
	mu.Lock()
	defer mu.Unlock()
	// Gap i follows failure i: base*1.6^(i-1) ±20%, capped at 200ms.
	for i := 1; i < 7; i++ {
		gap := attempts[i].Sub(attempts[i-1])
		want := 10 * time.Millisecond
		for j := 1; j < i; j++ {
			want = want * 16 / 10
		}
		if gap < want*8/10-time.Millisecond {
			t.Errorf("gap before attempt %d is %v, want at least %v", i+1, gap, want*8/10)
		}
	}
	if st := c.State("db"); st != StateBackoff && st != StateConnecting {
		t.Errorf("state %s while the node refuses connections, want backoff", st)
	}
}

func TestAddressChangeMovesNode(t *testing.T) {
	a := ctServe(t, "db")
	b := ctServe(t, "db")
	reg := registry.NewStatic(map[string]string{"db": a.addr})
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)
	const n = 2000
	want := testkit.Seq("m", n)
	moved := false
	for i, m := range want {
		if i == n/2 {
			reg.Set("db", b.addr)
			moved = true
		}
		if err := c.Send(ctx, "db", "@rec", []byte(m)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if _, err := c.Call(ctx, "db", "@rec", []byte("sync")); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = moved
	testkit.Eventually(t, "the node moved to the new address", func() bool {
		_, err := c.Call(ctx, "db", "@rec", []byte("probe"))
		return err == nil && b.count() > 0
	})
	// Every message arrived once, in order: those on a, then those on b.
	var got []string
	for _, s := range append(a.received(), b.received()...) {
		if s != "sync" && s != "probe" {
			got = append(got, s)
		}
	}
	ctEqual(t, "across the move", got, want)
}

func TestMessageTooLargeFailsBeforeQueueing(t *testing.T) {
	reg := &ctCountingRegistry{Registry: registry.NewStatic(nil)}
	c := ctNewClient(t, reg, WithMaxMessageSize(1000))
	ctx := ctCtx(t)
	if err := c.Send(ctx, "db", "@rec", make([]byte, 1001)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("Send: %v, want ErrMessageTooLarge", err)
	}
	if _, err := c.Call(ctx, "db", "@rec", make([]byte, 1001)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("Call: %v, want ErrMessageTooLarge", err)
	}
	if reg.lookups.Load() != 0 || ctQueued(c, "db") != 0 || c.State("db") != StateIdle {
		t.Fatal("an oversize message was queued or resolved")
	}
}

func TestLargeMessagesSplitKeepOrder(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)
	var want []string
	for i := 0; i < 30; i++ {
		m := fmt.Sprintf("%03d", i)
		if i%3 == 0 {
			m += strings.Repeat("L", 0x8000*(1+i%4)+i) // multipart, various part counts
		}
		want = append(want, m)
		if err := c.Send(ctx, "db", "@rec", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "all delivered", func() bool { return peer.count() == len(want) })
	ctEqual(t, "order with multipart messages", peer.received(), want)

	big := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB each way
	reply, err := c.Call(ctx, "db", "@rec", big)
	if err != nil || !bytes.Equal(reply, big) {
		t.Fatalf("1 MB echo: %d bytes, %v", len(reply), err)
	}
}

func TestCloseFailsPendingAndLeavesNoGoroutine(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(map[string]string{"db": peer.addr})
	reg.SetNotReady("later", "")
	c := New(reg)
	ctx := ctCtx(t)
	inflight := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "db", "@slow", []byte("x"))
		inflight <- err
	}()
	queued := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "later", "@rec", []byte("y"))
		queued <- err
	}()
	if err := c.Send(ctx, "later", "@rec", []byte("dropped")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "one call in flight, one queued", func() bool {
		return peer.slowIn.Load() == 1 && ctQueued(c, "later") == 2
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"in flight": inflight, "queued": queued} {
		if err := <-ch; !errors.Is(err, ErrClosed) {
			t.Errorf("%s call at Close: %v, want ErrClosed", name, err)
		}
	}
	if err := c.Send(ctx, "db", "@rec", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if _, err := c.Call(ctx, "brand-new", "@rec", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call to a new node after Close: %v", err)
	}
	// A goroutine Close waited for may still be returning from its
	// deferred Done: it must be gone promptly, not at the instant.
	testkit.Eventually(t, "no Client goroutine left after Close", func() bool { return ctClientGoroutines() == 0 })
	if got := ctCounter(t, c, "skycall_sender_dropped_total", "later", "closed"); got != 1 {
		t.Fatalf("dropped sends at Close counted %v, want 1", got)
	}
}

func TestQueryAndCallHandle(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)
	h, err := c.Query(ctx, "db", "rec")
	if err != nil || h == 0 {
		t.Fatalf("Query = %d, %v", h, err)
	}
	reply, err := c.CallHandle(ctx, "db", h, []byte("by handle"))
	if err != nil || string(reply) != "by handle" {
		t.Fatalf("CallHandle = %q, %v", reply, err)
	}
	if err := c.ServiceHandle("db", h).Send(ctx, []byte("pushed")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "push by handle delivered", func() bool { return peer.count() == 2 })
	_, err = c.Query(ctx, "db", "nosuch")
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "name not found" {
		t.Fatalf("Query of an unknown name: %v", err)
	}
	if _, err := c.CallHandle(ctx, "db", 0, nil); err == nil {
		t.Fatal("CallHandle to handle 0 accepted")
	}
}

func TestCallValuesPacksAndUnpacks(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)
	vals, err := c.CallValues(ctx, "db", "@rec", "get", int64(42), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 3 || vals[0] != "get" || vals[1] != int64(42) || vals[2] != true {
		t.Fatalf("CallValues echo = %#v", vals)
	}
	svc := c.Service("db", "@rec")
	if err := svc.SendValues(ctx, "set", int64(1)); err != nil {
		t.Fatal(err)
	}
	if vals, err := svc.CallValues(ctx, "x"); err != nil || len(vals) != 1 || vals[0] != "x" {
		t.Fatalf("Service.CallValues = %#v, %v", vals, err)
	}
}

func TestConcurrentCallsAndSendsUnderLoad(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)
	const workers, each = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m := fmt.Sprintf("w%d-%d", w, i)
				if i%2 == 0 {
					if err := c.Send(ctx, "db", "@rec", []byte(m)); err != nil {
						errs <- err
						return
					}
					continue
				}
				reply, err := c.Call(ctx, "db", "@rec", []byte(m))
				if err != nil || string(reply) != m {
					errs <- fmt.Errorf("call %s = %q, %v", m, reply, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testkit.Eventually(t, "all delivered", func() bool { return peer.count() == workers*each })
	// Per sender goroutine, order is kept.
	next := map[string]int{}
	for _, s := range peer.received() {
		w, i, _ := strings.Cut(s, "-")
		var n int
		fmt.Sscan(i, &n)
		if n != next[w] {
			t.Fatalf("worker %s: message %d arrived when %d was expected", w, n, next[w])
		}
		next[w]++
	}
}

// CallAppend appends the reply to the caller's buffer, reusing its array
// when it has room, and hands the buffer back unchanged on an error; with
// a buffer that has room it makes one allocation less than Call.
func TestCallAppendAppendsToTheCallersBuffer(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}))
	ctx := ctCtx(t)

	buf := append(make([]byte, 0, 64), "x:"...)
	got, err := c.CallAppend(ctx, "db", "@rec", []byte("hello"), buf)
	if err != nil || string(got) != "x:hello" || &got[0] != &buf[0] {
		t.Fatalf("CallAppend = %q, %v (same array: %v); want x:hello in buf's array", got, err, err == nil && &got[0] == &buf[0])
	}
	if got, err := c.CallAppend(ctx, "db", "@rec", []byte("new"), nil); err != nil || string(got) != "new" {
		t.Fatalf("CallAppend to nil = %q, %v", got, err)
	}
	got, err = c.CallAppend(ctx, "db", "@fail", []byte("p"), buf)
	var re *RemoteError
	if !errors.As(err, &re) || string(got) != "x:" || &got[0] != &buf[0] {
		t.Fatalf("CallAppend to @fail = %q, %v; want buf unchanged and a RemoteError", got, err)
	}
	svc := c.Service("db", "@rec")
	if got, err := svc.CallAppend(ctx, []byte("svc"), buf); err != nil || string(got) != "x:svc" {
		t.Fatalf("Service.CallAppend = %q, %v", got, err)
	}
	if got, err := c.CallAppend(ctx, "", "@rec", nil, buf); err == nil || string(got) != "x:" {
		t.Fatalf("CallAppend with no node = %q, %v; want buf and an error", got, err)
	}

	if raceEnabled {
		return // sync.Pool drops items under the race detector: counts do not hold
	}
	payload := bytes.Repeat([]byte("p"), 4096)
	reply := make([]byte, 0, 4096)
	call := testing.AllocsPerRun(200, func() {
		if _, err := svc.Call(ctx, payload); err != nil {
			t.Fatal(err)
		}
	})
	appended := testing.AllocsPerRun(200, func() {
		if _, err := svc.CallAppend(ctx, payload, reply[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if appended > call-0.9 {
		t.Fatalf("%.2f allocations per 4 KiB CallAppend, %.2f per Call: want one less", appended, call)
	}
	t.Logf("%.2f allocations per 4 KiB CallAppend, %.2f per Call (the in-process Server's included)", appended, call)
}

// A payload in the caller's own stack array stays there: the Client keeps
// none of a message's bytes, so they never move to the heap.
func TestPayloadOnTheCallersStackStaysThere(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector: counts do not hold")
	}
	p := ctServeSkynet(t)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": p.addr}))
	ctx := context.Background()
	reply := make([]byte, 0, 64)
	onHeap := make([]byte, 64)
	if _, err := c.CallAppend(ctx, "db", "@echo", onHeap, reply); err != nil {
		t.Fatal(err)
	}
	send := testing.AllocsPerRun(1000, func() {
		var payload [64]byte
		if err := c.Send(ctx, "db", "@echo", payload[:]); err != nil {
			t.Fatal(err)
		}
	})
	// The peer, in this process, allocates for each reply: compare with
	// the same call of a payload on the heap.
	call := testing.AllocsPerRun(200, func() {
		var payload [64]byte
		if _, err := c.CallAppend(ctx, "db", "@echo", payload[:], reply[:0]); err != nil {
			t.Fatal(err)
		}
	})
	heapCall := testing.AllocsPerRun(200, func() {
		if _, err := c.CallAppend(ctx, "db", "@echo", onHeap, reply[:0]); err != nil {
			t.Fatal(err)
		}
	})
	// Buffers grow now and then while the writer catches up; a payload
	// moved to the heap would show as 1 or more.
	if send >= 0.5 || call >= heapCall+0.5 {
		t.Errorf("allocations with a payload on the stack: %.2f per Send, want 0; %.2f per CallAppend, want %.2f as with one on the heap", send, call, heapCall)
	}
}
