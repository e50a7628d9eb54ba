package sender

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// A message's way into a node: the message itself, the call that waits for
// a Call's reply, and submit, which admits the message under the node's
// quota into the outbox, or into the FIFO while the node is not ready.

// message is one Send or Call on its way to a node, from submit to the
// outbox (or the FIFO first): where it goes and, for a Call, who waits for
// the reply. Its bytes travel beside it as a body.
type message struct {
	addr uint32 // the service handle; 0 when name is set, and for the query address (no name)
	name string // the service name ("@name", ".name"); "" for a handle
	push bool   // a Send: the peer replies to it only with an error
	call *call  // the waiter of a Call's reply; nil for a Send
}

// body is a message's bytes, the caller's: encoded into the outbox or
// copied into the FIFO, never kept. They travel apart from the message,
// whose name and call the Client keeps: escape analysis does not tell
// fields apart, and would move a payload on the caller's stack to the heap.
type body struct {
	payload []byte
	tag     []byte // the trace tag written just before the payload, nil for none (tracing.go)
}

// Where a call is. Guarded by node.mu.
const (
	whereNone = iota // not queued (new, or being delivered)
	whereFIFO        // in the node's FIFO, not yet encoded
	whereOut         // encoded into the node's outbox (gen == outbox.gen) or written
)

// call is one Call waiting for its reply: the waiter the reader, the
// sweeper or a failing node delivers to exactly once. It is pooled.
type call struct {
	done  chan struct{} // 1-buffered: exactly one delivery per use
	reply []byte
	err   error
	dst   []byte // CallAppend: the reply is appended to it (the caller's, until done is received)

	// Set by submit when it puts the call in the outbox: the connection
	// its caller may read the reply from (reader.go).
	conn *nodeConn

	// Set before submit; read by the sweeper and for error messages.
	deadline uint64 // Client.now at which the default timeout fires; 0: none
	addr     uint32
	name     string

	// Guarded by node.mu.
	where   uint8
	session uint32
	seq     uint64  // its write ordinal: a reply proves every earlier message received (acks.go)
	gen     uint64  // the outbox generation it was encoded in
	outIdx  int     // its index in outbox.calls while gen == outbox.gen
	q       *queued // its FIFO entry while where == whereFIFO
}

// Call waiters are pooled: a Call in steady state allocates only its reply,
// and a CallAppend into a buffer with room nothing.
var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func getCall() *call { return callPool.Get().(*call) }

// putCall returns w to the pool; the caller has taken its one delivery, or
// owns it because none will come.
func putCall(w *call) {
	done := w.done
	*w = call{done: done}
	callPool.Put(w)
}

// deliver wakes the callers of calls whose reply or err is set.
func deliver(calls []*call) {
	for _, w := range calls {
		w.done <- struct{}{}
	}
}

// submit admits m with its bytes b: straight into the outbox when the node
// is ready (the FIFO is then empty), else into the FIFO.
func (n *node) submit(ctx context.Context, m *message, b body) error {
	size := len(b.payload)
	o := &n.c.opts
	n.mu.Lock()
	if n.forgotten {
		n.mu.Unlock()
		return errForgotten
	}
	n.idle.touch()
	if n.state == StateIdle {
		n.startLocked()
	}
	for {
		if n.failErr != nil && !n.recheckLocked() {
			err := n.failErr
			n.mu.Unlock()
			return err
		}
		if n.quota.admits(size, o.queueLimit, o.queueBytes) {
			break
		}
		if o.failWhenFull {
			err := newNodeError(ErrQueueFull, nil,
				"skycall: queue for node %q is full (%d messages, %d bytes; limits %d and %d, state %s); slow down, raise WithQueueLimit/WithQueueBytes, or drop WithQueueFullError to wait for room",
				n.name, n.quota.msgs, n.quota.bytes, o.queueLimit, o.queueBytes, n.state)
			n.mu.Unlock()
			return err
		}
		space := n.quota.wait()
		n.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return fmt.Errorf("skycall: waiting for room in the full queue of node %q (not sent): %w", n.name, ctx.Err())
		}
		n.mu.Lock()
	}
	n.quota.add(size)
	w := m.call
	if n.state == StateReady {
		n.appendLocked(m, b)
		// A lone call's caller writes its own frame (writer.go); otherwise
		// the writer goroutine is woken, once per burst.
		if w != nil {
			w.conn = n.conn
			if own, ok := n.conn.takeOwnLocked(); ok {
				n.mu.Unlock()
				w.conn.writeOwn(own)
				return nil
			}
		}
		if !n.signaled {
			n.signaled = true
			n.conn.wakeWriter()
		}
		n.mu.Unlock()
		return nil
	}
	q := &queued{message: *m, size: size, enq: time.Now()}
	q.payload = append([]byte(nil), b.payload...)
	if b.tag != nil {
		q.tag = append([]byte(nil), b.tag...)
	}
	if w != nil {
		w.where, w.q = whereFIFO, q
	}
	n.fifo.push(q)
	n.mu.Unlock()
	return nil
}

// quota is a node's queue accounting: the messages and payload bytes
// admitted and not yet handed to the socket (in the FIFO and in the
// outbox), and the channel that wakes callers waiting for room. Guarded by
// node.mu.
type quota struct {
	msgs, bytes int
	space       chan struct{} // closed when room frees; nil if nobody waits
}

// admits reports whether a message of size fits under the limits. An empty
// queue admits any message, so that one larger than the byte limit still
// goes (WithMaxMessageSize bounds it).
func (q *quota) admits(size, limitMsgs, limitBytes int) bool {
	return q.msgs == 0 || (q.msgs < limitMsgs && q.bytes+size <= limitBytes)
}

func (q *quota) add(size int) {
	q.msgs++
	q.bytes += size
}

// release gives back room and wakes those waiting for it.
func (q *quota) release(msgs, bytes int) {
	q.msgs -= msgs
	q.bytes -= bytes
	q.wake()
}

// wait returns a channel closed when room frees.
func (q *quota) wait() <-chan struct{} {
	if q.space == nil {
		q.space = make(chan struct{})
	}
	return q.space
}

// wake wakes every waiter, to look again.
func (q *quota) wake() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}
