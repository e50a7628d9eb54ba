package relay

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
)

// node is a Server whose @rec records every payload, in arrival order,
// and echoes it; .rec is the same service under a local name.
type node struct {
	addr      string
	recHandle uint32
	mu        sync.Mutex
	got       []string
}

func startNode(t *testing.T, name string) *node {
	t.Helper()
	n := &node{}
	s := server.New(name)
	rec := func(_ context.Context, req *server.Request) ([]byte, error) {
		n.mu.Lock()
		n.got = append(n.got, string(req.Payload))
		n.mu.Unlock()
		return req.Payload, nil
	}
	n.recHandle = sendertest.Handle(t, s, "@rec", rec)
	sendertest.Handle(t, s, ".rec", rec)
	sendertest.Handle(t, s, "@fail", func(context.Context, *server.Request) ([]byte, error) {
		return nil, fmt.Errorf("refused by the handler")
	})
	n.addr = sendertest.Serve(t, s)
	return n
}

func (n *node) received() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.got...)
}

// startRelay is a Relay over a Client of reg, both closed at cleanup.
func startRelay(t *testing.T, reg registry.Registry, opts ...Option) (*Relay, *prometheus.Registry) {
	t.Helper()
	c := sender.New(reg, sender.WithLogger(testr.New(t)), sender.WithBackoff(5*time.Millisecond, 50*time.Millisecond))
	metrics := prometheus.NewRegistry()
	r := New(c, append([]Option{WithLogger(testr.New(t)), WithRegisterer(metrics)}, opts...)...)
	t.Cleanup(func() {
		r.Close()
		c.Close()
	})
	return r, metrics
}

// dial connects a raw skynet-like sender to the relay's address for node.
func dial(t *testing.T, r *Relay, node string) *testkit.WireClient {
	t.Helper()
	addr, err := r.Address(node)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("relay address %s, want one on 127.0.0.1", addr)
	}
	return testkit.Dial(t, addr)
}

// readReplies reads n responses and returns them by session.
func readReplies(t *testing.T, c *testkit.WireClient, n int) map[uint32]wire.Response {
	t.Helper()
	got := map[uint32]wire.Response{}
	for range n {
		r := c.Read()
		got[r.Session] = r
	}
	return got
}

func TestRelayForwardsPipelinedCallsAndPushesInOrder(t *testing.T) {
	db := startNode(t, "db")
	r, _ := startRelay(t, registry.NewStatic(map[string]string{"db": db.addr}))
	c := dial(t, r, "db")

	const n = 300
	var want []string
	calls := map[uint32]string{}
	for i := range n {
		m := fmt.Sprintf("m-%d", i)
		want = append(want, m)
		switch i % 3 {
		case 0:
			c.Send(wire.Request{Name: "@rec", Push: true, Payload: []byte(m)})
		case 1:
			calls[c.Send(wire.Request{Name: "@rec", Payload: []byte(m)})] = m
		default:
			calls[c.Send(wire.Request{Name: ".rec", Payload: []byte(m)})] = m
		}
	}
	replies := readReplies(t, c, len(calls))
	for session, m := range calls {
		if r := replies[session]; !r.OK || string(r.Payload) != m {
			t.Fatalf("session %d: reply ok=%v %q, want %q", session, r.OK, r.Payload, m)
		}
	}
	testkit.Eventually(t, "every push and call delivered", func() bool { return len(db.received()) == n })
	if got := db.received(); !equal(got, want) {
		t.Fatalf("delivery order differs from the order written:\ngot  %q\nwant %q", got, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRelayForwardsHandlesQueriesAndMultipartBothWays(t *testing.T) {
	db := startNode(t, "db")
	r, _ := startRelay(t, registry.NewStatic(map[string]string{"db": db.addr}))
	c := dial(t, r, "db")

	big := bytes.Repeat([]byte("0123456789abcdef"), 100_000/16) // multipart request and reply
	if resp := c.Call(wire.Request{Address: db.recHandle, Payload: big}); !resp.OK || !bytes.Equal(resp.Payload, big) {
		t.Fatalf("a %d-byte call by handle: ok=%v, %d bytes back", len(big), resp.OK, len(resp.Payload))
	}
	query, _ := luaseri.Pack("rec")
	resp := c.Call(wire.Request{Address: 0, Payload: query})
	want, _ := luaseri.Pack(int64(db.recHandle))
	if !resp.OK || !bytes.Equal(resp.Payload, want) {
		t.Fatalf("query for rec: ok=%v %q, want the handle %d", resp.OK, resp.Payload, db.recHandle)
	}
}

func TestRelayRepliesWithTheNodesOwnErrorTexts(t *testing.T) {
	db := startNode(t, "db")
	r, _ := startRelay(t, registry.NewStatic(map[string]string{"db": db.addr}))
	c := dial(t, r, "db")

	query, _ := luaseri.Pack("nothere")
	for _, tc := range []struct {
		req  wire.Request
		want string
	}{
		{wire.Request{Name: "@nothere", Payload: []byte("x")}, wire.TextInvalidName},
		{wire.Request{Address: 0, Payload: query}, wire.TextNameNotFound},
		{wire.Request{Name: "@fail", Payload: []byte("x")}, "refused by the handler"},
	} {
		if resp := c.Call(tc.req); resp.OK || !strings.Contains(string(resp.Payload), tc.want) {
			t.Errorf("call to %s: ok=%v %q, want the error %q", serviceOf(&tc.req), resp.OK, resp.Payload, tc.want)
		}
	}
	// A part with no request before it, as skynet's receiver answers it.
	c.WriteRaw(append([]byte{0, 9, 3}, 7, 0, 0, 0, 'a', 'b', 'c', 'd', 'e'))
	if resp := c.Read(); resp.Session != 7 || resp.OK || string(resp.Payload) != wire.TextInvalidName {
		t.Errorf("orphan part: %+v, want %q for session 7", resp, wire.TextInvalidName)
	}
}

func TestRelayQueuesUntilTheNodeIsReadyThenDeliversInOrder(t *testing.T) {
	db := startNode(t, "db")
	reg := registry.NewStatic(nil)
	reg.SetNotReady("db", "the pod is starting")
	r, _ := startRelay(t, reg)
	c := dial(t, r, "db")

	var want []string
	var sessions []uint32
	for i := range 50 {
		m := fmt.Sprintf("q-%d", i)
		want = append(want, m)
		if i%2 == 0 {
			c.Send(wire.Request{Name: "@rec", Push: true, Payload: []byte(m)})
		} else {
			sessions = append(sessions, c.Send(wire.Request{Name: "@rec", Payload: []byte(m)}))
		}
	}
	time.Sleep(100 * time.Millisecond)
	if got := db.received(); len(got) != 0 {
		t.Fatalf("%d messages reached a node that is not ready", len(got))
	}
	reg.Set("db", db.addr)
	replies := readReplies(t, c, len(sessions))
	for _, s := range sessions {
		if !replies[s].OK {
			t.Fatalf("session %d: %q", s, replies[s].Payload)
		}
	}
	testkit.Eventually(t, "everything queued delivered", func() bool { return len(db.received()) == len(want) })
	if got := db.received(); !equal(got, want) {
		t.Fatalf("order after the wait:\ngot  %q\nwant %q", got, want)
	}
}

func TestRelayBoundsTheWaitForANodeThatNeverComes(t *testing.T) {
	reg := registry.NewStatic(nil)
	reg.SetNotReady("gone", "")
	r, metrics := startRelay(t, reg, WithWait(200*time.Millisecond))
	c := dial(t, r, "gone")
	start := time.Now()
	resp := c.Call(wire.Request{Name: "@rec", Payload: []byte("x")})
	waited := time.Since(start)
	if resp.OK || !strings.Contains(string(resp.Payload), "gone") {
		t.Fatalf("call to a node that never comes: ok=%v %q, want an error naming it", resp.OK, resp.Payload)
	}
	if waited < 200*time.Millisecond || waited > 2*time.Second {
		t.Errorf("the error came after %v, want the relay's wait of 200ms", waited)
	}
	if n := testkit.MetricValue(t, metrics, "skycall_relay_failed_total", map[string]string{"node": "gone", "kind": "call"}); n != 1 {
		t.Errorf("skycall_relay_failed_total{node=gone,kind=call} = %v, want 1", n)
	}
}

func TestRelayAddressesAreStableAndOnLoopback(t *testing.T) {
	r, _ := startRelay(t, registry.NewStatic(nil))
	a1, _ := r.Address("a")
	b, _ := r.Address("b")
	a2, _ := r.Address("a")
	if a1 != a2 || a1 == b {
		t.Fatalf("addresses a=%s, b=%s, a again=%s: want one stable address per name", a1, b, a2)
	}
	if n := len(r.Addresses()); n != 2 {
		t.Fatalf("%d nodes relayed, want 2", n)
	}
}

func TestRelayForwardsTheTraceTagAsItCame(t *testing.T) {
	tags := make(chan []byte, 1)
	s := server.New("db")
	sendertest.Handle(t, s, "@tag", func(_ context.Context, req *server.Request) ([]byte, error) {
		tags <- bytes.Clone(req.Trace)
		return nil, nil
	})
	r, _ := startRelay(t, registry.NewStatic(map[string]string{"db": sendertest.Serve(t, s)}))
	c := dial(t, r, "db")
	const tag = "(sky-a-9)00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if resp := c.Call(wire.Request{Name: "@tag", Payload: []byte("x"), Trace: []byte(tag)}); !resp.OK {
		t.Fatalf("traced call: %q", resp.Payload)
	}
	if got := testkit.Recv(t, "the tag at the node", tags); string(got) != tag {
		t.Fatalf("the node got trace tag %q, want skynet's %q as it came", got, tag)
	}
}
