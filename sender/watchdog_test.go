package sender

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/wire"
)

// wdPeer is a node that confirms connections as a skycall Server does (it
// answers the node query) and then misbehaves as mode says.
type wdPeer struct {
	addr     string
	accepted atomic.Int32
}

const (
	wdSilent       = iota // keeps reading everything, answers nothing
	wdStopsReading        // reads nothing more at all
)

func wdServe(t *testing.T, node string, mode int) *wdPeer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &wdPeer{addr: l.Addr().String()}
	name, _ := luaseri.Pack(node)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			t.Cleanup(func() { nc.Close() })
			go func() {
				dec := wire.NewRequestDecoder(bufio.NewReader(nc), wire.Limits{})
				q, err := dec.Next()
				if err != nil {
					return
				}
				nc.Write(wire.AppendResponse(nil, &wire.Response{Session: q.Session, OK: true, Payload: name}))
				if mode == wdSilent {
					io.Copy(io.Discard, nc)
				}
				// wdStopsReading: the socket stays open, unread.
			}()
		}
	}()
	return p
}

// A peer that confirmed and then went silent kept the
// node ready forever. With WithPeerTimeout(d) its in-flight calls fail with
// ErrConnectionLost wrapping ErrPeerUnresponsive within the documented
// 2.25·d, and the node reconnects.
func TestSilentPeerIsDetectedAndCallsFailTyped(t *testing.T) {
	const d = 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		mode int
		// payload large enough to fill the socket buffers when the peer
		// stops reading: the write deadline is what notices it then.
		payload int
	}{
		{"accepts and never answers", wdSilent, 10},
		{"stops reading", wdStopsReading, 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := wdServe(t, "db", tc.mode)
			c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}),
				WithPeerTimeout(d), WithCallTimeout(time.Hour), WithMaxMessageSize(16<<20))
			start := time.Now()
			_, err := c.Call(context.Background(), "db", "@rec", make([]byte, tc.payload))
			took := time.Since(start)
			if !errors.Is(err, ErrConnectionLost) || !errors.Is(err, ErrPeerUnresponsive) {
				t.Fatalf("call ended with %v, want ErrConnectionLost wrapping ErrPeerUnresponsive", err)
			}
			t.Logf("silent peer noticed after %v (WithPeerTimeout(%v), documented bound 2.25·d = %v): %v",
				took.Round(time.Millisecond), d, 9*d/4, err)
			// The bound is the behaviour; the margin is for a loaded machine.
			if limit := 9*d/4 + 2*time.Second; took > limit {
				t.Errorf("noticed after %v, documented bound %v", took, 9*d/4)
			}
			testkit.Eventually(t, "the node reconnects", func() bool { return peer.accepted.Load() >= 2 })
		})
	}
}

// A peer that answers is never given up, however idle the connection.
func TestIdleConnectionToAnAnsweringPeerStaysUp(t *testing.T) {
	const d = 50 * time.Millisecond
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}), WithPeerTimeout(d))
	if _, err := c.Call(ctCtx(t), "db", "@rec", []byte("first")); err != nil {
		t.Fatal(err)
	}
	// Idle for many peer timeouts: each one sends a probe the Server answers.
	deadline := time.Now().Add(20 * d)
	for time.Now().Before(deadline) {
		if s := c.State("db"); s != StateReady {
			t.Fatalf("idle connection left state ready: %v", s)
		}
		time.Sleep(d / 5)
	}
	if _, err := c.Call(ctCtx(t), "db", "@rec", []byte("second")); err != nil {
		t.Fatal(err)
	}
	if n := peer.conns(); n != 1 {
		t.Fatalf("the Server saw %d connections, want the first one kept", n)
	}
}

// Probes go through the node's quota like any message: after many of them
// the quota is back to empty, not below.
func TestProbesLeaveTheQueueQuotaBalanced(t *testing.T) {
	const d = 10 * time.Millisecond
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}), WithPeerTimeout(d))
	if _, err := c.Call(ctCtx(t), "db", "@rec", []byte("first")); err != nil {
		t.Fatal(err)
	}
	n := c.node("db")
	deadline := time.Now().Add(30 * d) // many probes
	for time.Now().Before(deadline) {
		n.mu.Lock()
		msgs, bytes := n.quota.msgs, n.quota.bytes
		n.mu.Unlock()
		if msgs < 0 || bytes < 0 {
			t.Fatalf("quota went negative: %d messages, %d bytes", msgs, bytes)
		}
		time.Sleep(d / 2)
	}
	testkit.Eventually(t, "the quota is empty once the last probe is written", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.quota.msgs == 0 && n.quota.bytes == 0
	})
}
