package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/wire"
)

// A connection reader holding the service table keeps a consistent
// snapshot while Handle adds services: Handle replaces the table, never
// changes it.
func TestServiceTableIsASnapshotHandleReplaces(t *testing.T) {
	s := New("db")
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

// A sequential service's handler runs on the connection's reader when
// nothing else waits for it; one that waits for a later message of its own
// connection must still get it (the reader hands reading to a new
// goroutine), and the connection's other services keep answering.
func TestHandlerWaitingForALaterMessageOfItsConnection(t *testing.T) {
	s := New("node-a")
	arrived := make(chan struct{})
	mustHandle(t, s, "@waiter", func(ctx context.Context, req *Request) ([]byte, error) {
		select {
		case <-arrived:
			return []byte("woken"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	mustHandle(t, s, "@waker", func(context.Context, *Request) ([]byte, error) {
		close(arrived)
		return []byte("woke"), nil
	})
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	waiter := c.Send(wire.Request{Name: "@waiter"})
	if resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("meanwhile")}); string(resp.Payload) != "meanwhile" {
		t.Fatalf("@echo while @waiter runs: %+v", resp)
	}
	waker := c.Send(wire.Request{Name: "@waker"})
	got := map[uint32]string{}
	for range 2 {
		resp := c.Read()
		got[resp.Session] = string(resp.Payload)
	}
	if got[waiter] != "woken" || got[waker] != "woke" {
		t.Fatalf("replies %v, want @waiter woken by the later @waker", got)
	}
}

// Several connections feeding one busy sequential service with a tiny
// queue: every message is handled, one at a time, each connection's in the
// order sent, and no more than WithQueueSize wait at any moment. Readers wait
// for room in turn (the worker signals room once however many wait), so a
// lost signal would leave a connection stuck here.
func TestBusySequentialServiceKeepsOrderAndBoundAcrossConnections(t *testing.T) {
	const conns, perConn, queueSize = 4, 200, 2
	s := New("node-a")
	var (
		mu      sync.Mutex
		running bool
		last    = map[byte]int{}
		handled int
		bad     []string
	)
	mustHandle(t, s, "@seq", func(_ context.Context, req *Request) ([]byte, error) {
		svc := s.services.Load().byName["@seq"]
		mu.Lock()
		defer mu.Unlock()
		if running {
			bad = append(bad, "two handlers at once")
		}
		if n := len(svc.waiting); n > queueSize {
			bad = append(bad, fmt.Sprintf("%d messages queued, bound %d", n, queueSize))
		}
		running = true
		conn, seq := req.Payload[0], int(binary.BigEndian.Uint32(req.Payload[1:]))
		if seq != last[conn]+1 {
			bad = append(bad, fmt.Sprintf("connection %d: message %d after %d", conn, seq, last[conn]))
		}
		last[conn] = seq
		handled++
		mu.Unlock()
		runtime.Gosched() // let the readers fill the queue
		mu.Lock()
		running = false
		return nil, nil
	}, WithQueueSize(queueSize))
	addr, _ := serveTest(t, s)
	writeErr := make(chan error, conns)
	for i := range conns {
		c := testkit.Dial(t, addr)
		var frames [][]byte
		for seq := 1; seq <= perConn; seq++ {
			b, err := wire.AppendRequest(nil, &wire.Request{Name: "@seq", Push: true, Session: uint32(seq),
				Payload: binary.BigEndian.AppendUint32([]byte{byte(i)}, uint32(seq))})
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, b)
		}
		go func() {
			// One write per message, as skynet writes them.
			c.Conn.SetWriteDeadline(time.Now().Add(testTimeout))
			for _, b := range frames {
				if _, err := c.Conn.Write(b); err != nil {
					writeErr <- err
					return
				}
			}
		}()
	}
	testkit.Eventually(t, "every message handled", func() bool {
		select {
		case err := <-writeErr:
			t.Fatalf("write: %v", err)
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		return handled == conns*perConn
	})
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d violations, first: %s", len(bad), bad[0])
	}
}

// A WithReuseRequests service gets every message intact, though its Requests
// are recycled: pushes from several connections, small and large, some run
// on the reader and some queued behind a slow handler, and calls whose
// reply is the payload itself, for a sequential and a WithConcurrent service.
func TestReuseRequestsDeliversEveryMessageIntact(t *testing.T) {
	const conns, perConn = 3, 300
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			s := New("node-a")
			var (
				mu   sync.Mutex
				got  = map[string]int{}
				seen int
			)
			opts := []HandleOption{WithReuseRequests(), WithQueueSize(4)}
			if concurrent {
				opts = append(opts, WithConcurrent())
			}
			mustHandle(t, s, "@keep", func(_ context.Context, req *Request) ([]byte, error) {
				if len(req.Payload) == 0 || req.Payload[0]%7 == 0 {
					time.Sleep(50 * time.Microsecond) // let messages queue behind this one
				}
				mu.Lock()
				got[string(req.Payload)]++ // copied: the Request is reused
				seen++
				mu.Unlock()
				if req.Push {
					return nil, nil
				}
				return req.Payload, nil
			}, opts...)
			addr, _ := serveTest(t, s)
			want := map[string]int{}
			writeErr := make(chan error, conns)
			clients := make([]*testkit.WireClient, conns)
			for i := range conns {
				clients[i] = testkit.Dial(t, addr)
				var buf []byte
				for seq := range perConn {
					// 1 to 100 bytes, both sides of the 64-byte box, and now
					// and then a payload in reused room (4 KiB, 40 KiB in
					// parts) or over reuseMax (70 KiB).
					size := 1 + seq%100
					switch seq % 60 {
					case 7:
						size = 4096
					case 17:
						size = 40 << 10
					case 27:
						size = 70 << 10
					}
					p := fmt.Appendf(nil, "%c%d-%d:", byte(seq%250), i, seq)
					for len(p) < size {
						p = append(p, byte('a'+seq%26))
					}
					want[string(p)]++
					var err error
					if buf, err = wire.AppendRequest(buf, &wire.Request{Name: "@keep", Push: true, Session: uint32(seq + 1), Payload: p}); err != nil {
						t.Fatal(err)
					}
				}
				go func(c *testkit.WireClient, b []byte) {
					c.Conn.SetWriteDeadline(time.Now().Add(testTimeout))
					_, err := c.Conn.Write(b)
					writeErr <- err
				}(clients[i], buf)
			}
			for range conns {
				if err := <-writeErr; err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			// Calls after the pushes: the reply is the recycled payload.
			for i, c := range clients {
				p := fmt.Appendf(nil, "call from %d", i)
				want[string(p)]++
				if resp := c.Call(wire.Request{Name: "@keep", Payload: p}); !resp.OK || string(resp.Payload) != string(p) {
					t.Fatalf("call %q answered %+v", p, resp)
				}
			}
			testkit.Eventually(t, "every message handled", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return seen == conns*(perConn+1)
			})
			mu.Lock()
			defer mu.Unlock()
			for p, n := range want {
				if got[p] != n {
					t.Fatalf("payload %q handled %d times, want %d (%d distinct payloads handled, %d sent)", p, got[p], n, len(got), len(want))
				}
			}
		})
	}
}

// WithReuseRequests spares the allocation of every message up to 64 KiB:
// pushes to a sequential service cost the Server well under one allocation
// each with it, and at most two (the Request and its payload, which the
// handler may keep) without.
func TestReuseRequestsAllocatesNothingPerPush(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts do not hold under the race detector (sync.Pool drops items on purpose); run without -race")
	}
	const pushes = 20000
	for _, tc := range []struct {
		name     string
		size     int
		opts     []HandleOption
		min, max float64
	}{
		{"default/32B", 32, nil, 0, 1.1},
		{"WithReuseRequests/32B", 32, []HandleOption{WithReuseRequests()}, 0, 0.2},
		{"default/4KiB", 4096, nil, 0, 2.1},
		{"WithReuseRequests/4KiB", 4096, []HandleOption{WithReuseRequests()}, 0, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New("node-a")
			var handled atomic.Int64
			mustHandle(t, s, "@count", func(context.Context, *Request) ([]byte, error) {
				handled.Add(1)
				return nil, nil
			}, tc.opts...)
			addr, _ := serveTest(t, s)
			c := testkit.Dial(t, addr)
			frame, err := wire.AppendRequest(nil, &wire.Request{Name: "@count", Push: true, Session: 1, Payload: pattern(tc.size)})
			if err != nil {
				t.Fatal(err)
			}
			burst := bytes.Repeat(frame, pushes)
			send := func() {
				t.Helper()
				before := handled.Load()
				c.Conn.SetWriteDeadline(time.Now().Add(testTimeout))
				if _, err := c.Conn.Write(burst); err != nil {
					t.Fatal(err)
				}
				testkit.Eventually(t, "the burst handled", func() bool { return handled.Load() == before+pushes })
			}
			send() // warm: buffers grown, pool filled
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			send()
			runtime.ReadMemStats(&m1)
			per := float64(m1.Mallocs-m0.Mallocs) / pushes
			if per < tc.min || per > tc.max {
				t.Fatalf("%.3f allocations per %d-byte push, want %v to %v", per, tc.size, tc.min, tc.max)
			}
			t.Logf("%.3f allocations per %d-byte push", per, tc.size)
		})
	}
}

// A reader that keeps a sequential service's turn for the next message of
// its burst (already buffered) still lets a message that another
// connection queued meanwhile go first: arrival order holds across
// connections.
func TestBufferedBurstDoesNotOvertakeAnotherConnection(t *testing.T) {
	// a1 blocks: without a hand-off, a2... stay buffered behind it.
	defer func(d time.Duration) { inlineFor = d }(inlineFor)
	inlineFor = time.Hour
	s := New("node-a")
	var (
		mu      sync.Mutex
		handled []string
	)
	first := make(chan struct{})
	release := make(chan struct{})
	mustHandle(t, s, "@seq", func(_ context.Context, req *Request) ([]byte, error) {
		if string(req.Payload) == "a1" {
			close(first)
			<-release
		}
		mu.Lock()
		handled = append(handled, string(req.Payload))
		mu.Unlock()
		return nil, nil
	})
	addr, _ := serveTest(t, s)
	a, b := testkit.Dial(t, addr), testkit.Dial(t, addr)
	var burst []byte
	for i := 1; i <= 50; i++ {
		var err error
		if burst, err = wire.AppendRequest(burst, &wire.Request{Name: "@seq", Push: true, Session: uint32(i),
			Payload: fmt.Appendf(nil, "a%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	a.WriteRaw(burst) // one write: a2.. are buffered while a1 runs
	testkit.Recv(t, "a1 running", first)
	b.Send(wire.Request{Name: "@seq", Push: true, Payload: []byte("b1")})
	svc := s.services.Load().byName["@seq"]
	testkit.Eventually(t, "b1 queued behind a1", func() bool { return svc.pending.Load() == 2 })
	close(release)
	testkit.Eventually(t, "every push handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 51
	})
	mu.Lock()
	defer mu.Unlock()
	if handled[0] != "a1" || handled[1] != "b1" || handled[2] != "a2" || handled[50] != "a50" {
		t.Fatalf("handled %v ... ; want a1, b1, a2, ... a50", handled[:4])
	}
}
