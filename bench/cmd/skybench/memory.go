package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/skycall-io/skycall/bench/internal/rawpeer"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
)

// live is the live heap and goroutine stacks after a full GC.
type live struct{ heap, stack int64 }

func liveNow() live {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return live{int64(m.HeapAlloc), int64(m.StackInuse)}
}

func (l live) total() int64 { return l.heap + l.stack }

// perNode is (b - a) / k, as heap, stack and total.
func perNode(a, b live, k int) (heap, stack, total float64) {
	heap = float64(b.heap-a.heap) / float64(k)
	stack = float64(b.stack-a.stack) / float64(k)
	return heap, stack, heap + stack
}

type memResult struct {
	nodes         int
	grossPerNode  float64 // skycall nodes and the peer's side of their connections
	peerPerConn   float64 // a bare TCP connection pair to the same peer, one query each
	clientPerNode float64 // gross - peer: what the Client keeps per idle node
	clientHeap    float64 // of which heap
	clientStack   float64 // of which goroutine stacks
	goroutines    float64 // per node
	queued        int
	queuedBytes   float64 // live bytes for the queued sends
	delivered     int64
	err           error
}

// measureIdleNodes connects k nodes (k names for the same raw peer), makes
// one 32-byte call on each, lets them idle and measures what they keep.
// The peer runs in the process too, so a baseline of k bare connections
// with one query each (the peer's side plus a bare socket) is subtracted.
func measureIdleNodes(peer *rawpeer.Peer, k int) (r memResult) {
	r.nodes = k
	// A node query as a frame: length 11; type 0, address 0, session 1,
	// payload pack("x").
	query := []byte{0, 11, 0x00, 0, 0, 0, 0, 1, 0, 0, 0, 0x0C, 'x'}

	m0 := liveNow()
	bare := make([]net.Conn, k)
	for i := range bare {
		c, err := net.Dial("tcp", peer.Addr())
		if err != nil {
			r.err = err
			return r
		}
		bare[i] = c
		if _, err := c.Write(query); err != nil {
			r.err = err
			return r
		}
		br := bufio.NewReaderSize(c, 16)
		if _, err := br.Peek(7); err != nil {
			r.err = fmt.Errorf("bare query: %w", err)
			return r
		}
	}
	time.Sleep(50 * time.Millisecond)
	m1 := liveNow()
	peerHeap, peerStack, peerTotal := perNode(m0, m1, k)
	r.peerPerConn = peerTotal
	for _, c := range bare {
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)

	nodes := make(map[string]string, k)
	for i := range k {
		nodes[fmt.Sprintf("idle-%d", i)] = peer.Addr()
	}
	g0 := runtime.NumGoroutine()
	m0 = liveNow()
	c := sender.New(registry.NewStatic(nodes))
	payload := make([]byte, 32)
	for name := range nodes {
		if _, err := c.Call(context.Background(), name, "@echo", payload); err != nil {
			r.err = fmt.Errorf("call to %s: %w", name, err)
			c.Close()
			return r
		}
	}
	time.Sleep(100 * time.Millisecond)
	m1 = liveNow()
	g1 := runtime.NumGoroutine()
	grossHeap, grossStack, grossTotal := perNode(m0, m1, k)
	r.grossPerNode = grossTotal
	r.clientPerNode = r.grossPerNode - r.peerPerConn
	r.clientHeap, r.clientStack = grossHeap-peerHeap, grossStack-peerStack
	r.goroutines = float64(g1-g0) / float64(k) // includes the peer's goroutine per connection
	runtime.KeepAlive(c)
	c.Close()
	return r
}

// measureQueuedSends queues n 32-byte Sends for a node that is not ready,
// measures the live bytes they hold, then makes the node ready and checks
// with a final Call that all arrived.
func (s *skySys) measureQueuedSends(n int, r *memResult) {
	r.queued = n
	payload := make([]byte, 32)
	before, err := counted(s.c)
	if err != nil {
		r.err = err
		return
	}
	reg := registry.NewStatic(map[string]string{skyNode: ""})
	m0 := liveNow()
	c := sender.New(reg)
	defer c.Close()
	for i := range n {
		if err := c.Send(context.Background(), skyNode, "@count", payload); err != nil {
			r.err = fmt.Errorf("queued send %d: %w", i, err)
			return
		}
	}
	m1 := liveNow()
	r.queuedBytes = float64(m1.total() - m0.total())
	reg.Set(skyNode, s.addr)
	after, err := counted(c)
	if err != nil {
		r.err = fmt.Errorf("final call: %w", err)
		return
	}
	r.delivered = after - before
}
