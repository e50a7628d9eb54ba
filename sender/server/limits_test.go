package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/wire"
)

// dialFrom dials addr from the loopback address local (127.x.y.z: Linux
// answers on all of 127/8), so that a test can be many peers.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: testTimeout}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// amplification is a memory amplification attack on one connection: 64
// multipart headers each declaring 16 MiB, each followed by one 64-byte
// part.
func amplification() []byte {
	var b []byte
	for s := uint32(1); s <= wire.DefaultMaxPartial; s++ {
		h := []byte{0x81, 5, '@', 'e', 'c', 'h', 'o'}
		h = binary.LittleEndian.AppendUint32(h, s)
		h = binary.LittleEndian.AppendUint32(h, wire.DefaultMaxMessageSize)
		b = append(b, frame(h...)...)
		p := binary.LittleEndian.AppendUint32([]byte{0x02}, s)
		b = append(b, frame(append(p, pattern(64)...)...)...)
	}
	return b
}

// needFiles raises the soft limit on open files to n if it is lower (Go
// already raises it to the hard limit at start); when the hard limit is
// lower, the test skips saying so, or fails under CI=true.
func needFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max >= n {
		lim.Cur = n
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		return
	}
	msg := fmt.Sprintf("needs %d open files, the hard limit is %d: raise it (ulimit -Hn %d) to run this test", n, lim.Max, n)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// 16 connections sending 88 KiB in all pinned 1 GiB of
// live heap. Goal: 1,000 such connections hold under 64 MiB, with default
// options, while a well-behaved client is served throughout.
func TestAmplificationAttackHoldsUnder64MiBAndOthersAreServed(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections; not in -short")
	}
	const (
		conns    = 1000
		perPeer  = 50 // under DefaultMaxConnsPerPeer
		heapGoal = 64 << 20
	)
	needFiles(t, 2*conns+100) // both ends of every connection live in this process
	s := New("node-a")
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)
	good := testkit.Dial(t, addr)
	served := 0
	callGood := func(when string) {
		t.Helper()
		msg := fmt.Sprintf("%s %d", when, served)
		if resp := good.Call(wire.Request{Name: "@echo", Payload: []byte(msg)}); !resp.OK || string(resp.Payload) != msg {
			t.Fatalf("well-behaved client %s: got %+v", when, resp)
		}
		served++
	}
	callGood("before the attack")
	before := heap()

	attack := amplification()
	for i := range conns {
		nc := dialFrom(t, fmt.Sprintf("127.0.%d.%d", 1+i/perPeer/250, 1+(i/perPeer)%250), addr)
		nc.SetWriteDeadline(time.Now().Add(testTimeout))
		if _, err := nc.Write(attack); err != nil {
			t.Fatalf("attacker %d: %v", i, err)
		}
		if i%100 == 99 {
			callGood(fmt.Sprintf("after %d attackers", i+1))
		}
	}
	// Every attacker's 64 parts have arrived when the budget holds them all.
	want := int64(conns * wire.DefaultMaxPartial * 64)
	testkit.Eventually(t, "the server has received every attacker's parts", func() bool { return s.partial.Used() == want })
	heap := heap()
	callGood("under attack")
	t.Logf("%d connections x 64 headers declaring 16 MiB + 64 bytes: live heap %.1f MiB (%.1f MiB before the attack), partial budget holds %d bytes",
		conns, float64(heap)/(1<<20), float64(before)/(1<<20), s.partial.Used())
	if heap > heapGoal {
		t.Fatalf("live heap %.1f MiB under attack, goal under %d MiB", float64(heap)/(1<<20), heapGoal>>20)
	}
	// A new well-behaved connection is accepted too.
	if resp := testkit.Dial(t, addr).Call(wire.Request{Name: "@echo", Payload: []byte("new")}); !resp.OK {
		t.Fatalf("a new connection during the attack: %+v", resp)
	}
}

func TestConnectionsOverTheLimitsAreRefusedWithALogLine(t *testing.T) {
	logger, logs := testkit.Logger(t)
	s := New("node-a", WithLogger(logger), WithMaxConns(3), WithMaxConnsPerPeer(2))
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)
	call := func(nc net.Conn) wire.Response {
		return testkit.NewWireClient(t, nc).Call(wire.Request{Name: "@echo", Payload: []byte("hi")})
	}
	a1, a2 := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)
	call(a1)
	call(a2)
	// A third connection from the same peer address is closed at once.
	testkit.NewWireClient(t, dialFrom(t, "127.0.0.1", addr)).ExpectClosed()
	testkit.Eventually(t, "the per-peer refusal is logged", func() bool {
		return logs.Contains("Refused connection", "127.0.0.1", "per peer address")
	})
	// Another peer is accepted, up to the Server's limit.
	b1 := dialFrom(t, "127.0.0.2", addr)
	call(b1)
	testkit.NewWireClient(t, dialFrom(t, "127.0.0.3", addr)).ExpectClosed()
	testkit.Eventually(t, "the server-wide refusal is logged", func() bool {
		return logs.Contains("Refused connection", "127.0.0.3", "connections open")
	})
	// The connections already open were never disturbed, and a slot freed
	// is a slot taken.
	call(a1)
	a2.Close()
	testkit.Eventually(t, "a closed connection frees its slot", func() bool {
		nc := dialFrom(t, "127.0.0.1", addr)
		testkit.NewWireClient(t, nc).Send(wire.Request{Name: "@echo", Payload: []byte("again")})
		_, err := testkit.NewWireClient(t, nc).ReadErr(time.Second)
		return err == nil
	})
}

func TestPartialBudgetDropsTheMessageNotTheConnection(t *testing.T) {
	logger, _ := testkit.Logger(t)
	s := New("node-a", WithLogger(logger), WithPartialBudget(3*wire.MultiPart))
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)

	// A holds two parts (64 KiB) of a large message.
	hog := testkit.Dial(t, addr)
	big, err := wire.AppendRequest(nil, &wire.Request{Name: "@echo", Session: 1, Payload: pattern(4 * wire.MultiPart)})
	if err != nil {
		t.Fatal(err)
	}
	frames := frames(t, big)
	for _, f := range frames[:3] {
		hog.WriteRaw(f)
	}
	testkit.Eventually(t, "the hog's parts are held", func() bool { return s.partial.Used() == 2*wire.MultiPart })

	// B's message of 3 parts cannot fit: B's call fails with a clear error,
	// B's connection and its next call are fine.
	c := testkit.Dial(t, addr)
	large := pattern(3 * wire.MultiPart)
	resp := c.Call(wire.Request{Name: "@echo", Payload: large})
	if resp.OK || !strings.Contains(string(resp.Payload), "busy") {
		t.Fatalf("over the budget: got OK=%v %.80q, want an error saying the node is busy", resp.OK, resp.Payload)
	}
	if resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("small")}); !resp.OK {
		t.Fatalf("a small call after the refused one: %+v", resp)
	}
	// Once the hog leaves, its bytes are returned and B's large call fits.
	hog.Conn.Close()
	testkit.Eventually(t, "the hog's bytes are returned to the budget", func() bool { return s.partial.Used() < 2*wire.MultiPart })
	if resp := c.Call(wire.Request{Name: "@echo", Payload: large}); !resp.OK || len(resp.Payload) != len(large) {
		t.Fatalf("the large call once the budget is free: OK=%v, %d bytes", resp.OK, len(resp.Payload))
	}
}

func TestQueuedBudgetStopsReadingUntilHandlersCatchUp(t *testing.T) {
	const size, budget = 40 << 10, 100 << 10
	s := New("node-a", WithQueuedBudget(budget))
	release := make(chan struct{})
	got := make(chan int, 10)
	mustHandle(t, s, "@slow", func(_ context.Context, req *Request) ([]byte, error) {
		<-release
		got <- len(req.Payload)
		return nil, nil
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)
	for range 6 {
		c.Send(wire.Request{Name: "@slow", Push: true, Payload: pattern(size)})
	}
	// The first is handled on the reader, uncounted; two wait and fit the
	// budget, and the reader waits before taking a fourth.
	testkit.Eventually(t, "the budget fills", func() bool { return s.queued.usedBytes() >= 2*size })
	if u := s.queued.usedBytes(); u > budget {
		t.Fatalf("%d bytes of requests queued, budget %d", u, budget)
	}
	close(release)
	for i := range 6 {
		if n := testkit.Recv(t, fmt.Sprintf("request %d handled", i), got); n != size {
			t.Fatalf("request %d: %d bytes", i, n)
		}
	}
	testkit.Eventually(t, "the budget empties", func() bool { return s.queued.usedBytes() == 0 })
}
