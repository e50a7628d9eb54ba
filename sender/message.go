package sender

import (
	"sync"
)

// message is one Send or Call on its way to a node, from submit to the
// outbox (or the FIFO first, which keeps its own copy of the bytes).
type message struct {
	addr    uint32 // the service handle; 0 with name, or 0 alone for the node's query address
	name    string // the service name ("@name", ".name"); "" for a handle
	push    bool   // a Send: the peer replies to it only with an error
	payload []byte
	tag     []byte // the trace tag written just before it, nil for none (tracing.go)
	call    *call  // the waiter of a Call's reply; nil for a Send
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

// timeoutError is the Client's call timeout (WithCallTimeout) passing: a
// nodeError of kind context.DeadlineExceeded, told apart from a ctx
// deadline for the metrics.
type timeoutError struct{ nodeError }

func (e *timeoutError) Timeout() bool { return true }
