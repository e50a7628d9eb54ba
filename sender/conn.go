package sender

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skycall-io/skycall/sender/wire"
)

// nodeConn is one confirmed connection to a node. It owns two goroutines:
// a writer that takes the node's outbox in batches and writes each with one
// Write, and a reader that matches replies to in-flight calls by session.
// A lone call skips both hand-offs: its caller writes it when the writer
// is idle (writeOwn), and reads its reply when nobody else reads
// (conn_read.go).
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

	rd          readRole // who reads (conn_read.go)
	interruptFn func()   // interruptRead, made once for context.AfterFunc

	wake    chan struct{} // 1-buffered: wakes the writer
	retired chan struct{} // closed when the connection is retired: the writer stops taking the outbox

	// UnixNano of the last reply read and of the last write progress, for
	// the watchdog (watchdog.go).
	lastRead, lastWrite atomic.Int64
	probeNow            chan struct{} // 1-buffered: the watchdog probes now (probeSoon)

	ackMu   sync.Mutex // guards acked and unacked (acks.go); n.mu before ackMu
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

// start runs the reader and the writer.
func (c *nodeConn) start() {
	c.n.c.wg.Add(3)
	go c.writeLoop()
	go c.readLoop()
	go c.watch()
}

// wakeWriter tells the writer the outbox has frames.
func (c *nodeConn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
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

// A node's free outbox chunks beyond clientKeepBuffer bytes are given back
// once its writer has had nothing to write for clientShrinkAfter.
const (
	clientKeepBuffer  = 4 << 20
	clientShrinkAfter = time.Second
)

// writeLoop is the connection's writer goroutine: it writes the node's
// outbox and, once the connection is retired, the probes of its drain.
func (c *nodeConn) writeLoop() {
	defer c.n.c.wg.Done()
	if c.writeOutbox() {
		c.writeDrainProbes()
	}
}

// writeOutbox writes the node's outbox in batches: it takes the chunks under
// the node's lock and writes them outside it, a Write each. It returns true
// when c was retired, everything it took written; false when c ended.
func (c *nodeConn) writeOutbox() bool {
	n := c.n
	var spare batch // the last batch written: its chunks are reused
	for {
		n.mu.Lock()
		for n.conn == c && (n.out.msgs == 0 || c.writing) {
			if n.out.msgs == 0 && len(n.out.chunks) > 0 { // only withdrawn calls: nothing to write
				n.out.reset()
			}
			spare.chunks = n.out.recycle(spare.chunks)
			// Idle with the chunks a burst needed: give them back once the
			// idle lasts. Not sooner: given back between the rounds of a
			// burst, they would be allocated again for the next round.
			var shrink <-chan time.Time
			if n.out.freeBytes() > clientKeepBuffer {
				if c.shrink == nil {
					c.shrink = time.NewTimer(clientShrinkAfter)
				} else {
					c.shrink.Reset(clientShrinkAfter)
				}
				shrink = c.shrink.C
			}
			n.signaled = false
			n.mu.Unlock()
			select {
			case <-c.wake:
			case <-shrink:
				n.mu.Lock()
				n.out.trim(clientKeepBuffer)
				continue
			case <-c.retired:
				return true
			case <-c.done:
				return false
			}
			// Woken from idle by the first message of a burst: let the
			// callers that are runnable now append theirs too, so that one
			// write carries many messages instead of one syscall each.
			runtime.Gosched()
			n.mu.Lock()
		}
		if n.conn != c {
			retired := c.draining.Load()
			n.mu.Unlock()
			return retired
		}
		b := n.out.take(&spare)
		c.lastGen = b.gen
		n.quota.release(b.msgs, b.bytes)
		n.mu.Unlock()

		if !c.writeBatch(&b) {
			return false
		}
		spare = b
	}
}

// writeBatch writes b, a batch taken from the outbox; when the write fails
// it ends the connection and returns false.
func (c *nodeConn) writeBatch(b *batch) bool {
	n := c.n
	wrote, err := c.writeChunks(b.chunks)
	if err != nil {
		if wrote > 0 {
			// Some of the batch may have arrived: its pushes are
			// unconfirmed, not certainly lost.
			c.written(&b.pushes)
			n.connLost(c, err, 0)
		} else {
			n.connLost(c, err, b.sends)
		}
		return false
	}
	c.written(&b.pushes)
	n.m.written.Add(float64(b.msgs))
	n.m.writtenBytes.Add(float64(wrote))
	return true
}

// takeOwnLocked lets the caller of the call just appended write it, when
// it is the only call in flight, all the outbox holds, and the writer is
// idle: it returns the batch to write with writeOwn, and ok. Under load
// the writer goroutine batches as usual. Called with n.mu held,
// c == n.conn.
func (c *nodeConn) takeOwnLocked() (b batch, ok bool) {
	n := c.n
	if n.signaled || c.writing || n.out.msgs != 1 || n.inflight.len() != 1 {
		return batch{}, false
	}
	c.writing = true
	b = n.out.take(&c.ownSpare)
	c.lastGen = b.gen
	n.quota.release(b.msgs, b.bytes)
	return b, true
}

// writeOwn writes the batch takeOwnLocked gave, then hands the writer what
// was appended meanwhile.
func (c *nodeConn) writeOwn(b batch) {
	n := c.n
	c.writeBatch(&b)
	n.mu.Lock()
	c.writing = false
	c.ownSpare.chunks = n.out.recycle(b.chunks)
	c.ownSpare.pushes = b.pushes
	if n.conn == c && n.out.msgs > 0 && !n.signaled {
		n.signaled = true
		c.wakeWriter()
	}
	retired := c.draining.Load()
	n.mu.Unlock()
	if retired {
		n.endDrainIfDone(c) // its drain waited for this write to end
	}
}

// readOne reads one reply and delivers it to the call waiting for it. Its
// caller holds the read role (conn_read.go).
func (c *nodeConn) readOne() error {
	n := c.n
	resp, err := c.dec.Next()
	if err != nil {
		return err
	}
	c.lastRead.Store(time.Now().UnixNano())
	w := n.inflight.take(resp.Session)
	if w == nil {
		n.unmatched(resp)
		return nil
	}
	c.ack(w.seq)
	n.m.readBytes.Add(float64(len(resp.Payload)))
	if resp.OK {
		if w.dst != nil {
			w.reply = append(w.dst, resp.Payload...)
		} else {
			w.reply = append(make([]byte, 0, len(resp.Payload)), resp.Payload...)
		}
	} else {
		addr := w.name
		if addr == "" {
			addr = handleAddress(w.addr)
		}
		w.err = &RemoteError{Node: n.name, Address: addr, Message: string(resp.Payload)}
	}
	w.done <- struct{}{}
	if c.draining.Load() {
		n.endDrainIfDone(c)
	}
	return nil
}

// lastRejectLog rate-limits the log of pushes the remote rejected.
var lastRejectLog atomic.Int64

// unmatched handles a reply nobody waits for: an error reply to a push
// (session 0, for example "Invalid name") is counted and logged; a late
// reply to a withdrawn call is dropped.
func (n *node) unmatched(resp *wire.Response) {
	if resp.Session != 0 || resp.OK {
		return
	}
	n.c.metrics.dropped.WithLabelValues(n.name, dropRejected).Inc()
	now := time.Now().UnixNano()
	if last := lastRejectLog.Load(); now-last > int64(time.Second) && lastRejectLog.CompareAndSwap(last, now) {
		n.log.Info("Node rejected a push", "message", string(resp.Payload))
	}
}
