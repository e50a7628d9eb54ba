package sender

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skycall-io/skycall/sender/wire"
)

// The Client's concurrency map: its goroutines, its locks in order, and who
// owns the fields of a connection.
//
// Goroutines; those the Client starts end before Close returns:
//
//	caller    Send, Call: submit under node.mu (message.go); a lone Call
//	          writes its own frame (writer.go) and, holding the read role,
//	          reads its own reply (reader.go)
//	manager   node.run, one per node in use: registry, dial and confirm
//	          (dial.go), becomeReady, drains, shutdown
//	writer    nodeConn.writeLoop, one per connection (writer.go)
//	reader    nodeConn.readLoop, one per connection, holding the read role
//	          when no caller does (reader.go)
//	watchdog  nodeConn.watch, one per connection (watchdog.go)
//	sweeper   Client.sweep: call timeouts (node.expire), idle nodes (idle.go)
//	callback  a drain's timer (connLost), a ctx's AfterFunc (interruptRead),
//	          the registry's watch (node.notify), a metrics scrape (Collect)
//
// Locks, in order: one is taken only while holding none listed below it,
// and nothing is locked while a leaf is held:
//
//	Client.nodesMu  making and forgetting nodes (client.go, idle.go)
//	node.mu         the node's state, FIFO, quota, outbox and connections,
//	                the call fields so marked, the nodeConn fields below
//	Client.mu       leaf: closed and wg.Add, against Close
//	readRole.mu     who reads a connection; never held with node.mu
//	inflight.mu     leaf: the in-flight calls by session (reader.go)
//	nodeConn.ackMu  leaf: the pushes not proven received (acks.go)
//
// The fields of a nodeConn, by owner:
//
//	read-only once started  n, nc, addr, peer, incarnation, readyAt, interruptFn, the channels
//	node.mu                 firstGen, lastGen, writing, ownSpare, drain
//	the read role's holder  dec
//	readRole.mu             rd, but for its atomic and its channel
//	ackMu                   acked, unacked
//	the writer              shrink
//	atomic                  lastRead, lastWrite (for the watchdog), draining (set under node.mu)

// nodeConn is one confirmed connection to a node. It owns three goroutines:
// a writer that takes the node's outbox in batches and writes each with one
// Write, a reader that matches replies to in-flight calls by session, and a
// watchdog. A lone call skips both hand-offs: its caller writes it when the
// writer is idle, and reads its reply when nobody else reads.
type nodeConn struct {
	n           *node
	nc          net.Conn
	addr        string
	peer        string // the node name a skycall Server gave; "" for skynet
	incarnation string // the process reached, as the peer reported it, else as the registry named it; "" if neither knew
	dec         *wire.ResponseDecoder
	readyAt     time.Time

	// Guarded by n.mu: the range of outbox generations this connection took.
	firstGen, lastGen uint64
	// Guarded by n.mu: a caller is writing its own call (writeOwn); the
	// writer waits. ownSpare is that caller's last batch, to reuse.
	writing  bool
	ownSpare batch

	rd          readRole // who reads (reader.go)
	interruptFn func()   // interruptRead, made once for context.AfterFunc

	wake    chan struct{} // 1-buffered: wakes the writer
	retired chan struct{} // closed when the connection is retired: the writer stops taking the outbox

	// UnixNano of the last reply read and of the last write progress, for
	// the watchdog (watchdog.go).
	lastRead, lastWrite atomic.Int64
	probeNow            chan struct{} // 1-buffered: the watchdog probes now (probeSoon)

	ackMu   sync.Mutex // guards acked and unacked (acks.go); a leaf
	acked   uint64     // highest write ordinal a reply proved received
	unacked seqRanges  // ordinals of pushes written and not proven received

	draining atomic.Bool // retired after a move, a drain or Close; see node.startDrain
	drain    connDrain   // guarded by n.mu (drain.go)
	shrink   *time.Timer // the writer's: gives back free outbox chunks after an idle second

	done      chan struct{}
	closeOnce sync.Once
}

func newNodeConn(n *node, nc net.Conn, addr, peer, incarnation string, dec *wire.ResponseDecoder) *nodeConn {
	c := &nodeConn{n: n, nc: nc, addr: addr, peer: peer, incarnation: incarnation, dec: dec,
		wake: make(chan struct{}, 1), retired: make(chan struct{}), done: make(chan struct{}),
		probeNow: make(chan struct{}, 1)}
	c.rd.wake = make(chan struct{}, 1)
	c.interruptFn = c.interruptRead
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	c.lastWrite.Store(now)
	return c
}

// start runs the writer, the reader and the watchdog.
func (c *nodeConn) start() {
	c.n.c.wg.Add(3)
	go c.writeLoop()
	go c.readLoop()
	go c.watch()
}

// retire stops the writer taking the outbox after a move, when the node
// drains or when the Client closes; the reader goes on for the replies
// still due. Called with n.mu held.
func (c *nodeConn) retire() {
	c.draining.Store(true)
	close(c.retired)
}

// wrote reports whether w was taken by this connection's writer (or is in
// the outbox generation it would take next). Called with n.mu held.
func (c *nodeConn) wrote(w *call) bool {
	return w.gen >= c.firstGen && w.gen <= c.lastGen
}

func (c *nodeConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}
