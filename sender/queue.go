package sender

import "time"

// queued is a message waiting in a node's FIFO until the node is ready and
// confirmed. Only this slow path copies payloads and allocates.
type queued struct {
	message            // payload and tag are the Client's own copies
	size     int       // len(payload), kept after a cancel frees payload
	enq      time.Time // when it was queued, for the queue wait metric
	canceled bool      // a Call whose ctx ended; skipped when drained
}

// fifo is a ring of queued messages. Canceled entries stay in place (a
// cancel is O(1)) and are skipped when drained; the ring is compacted when
// they pile up, so a node absent for long does not grow it without bound.
type fifo struct {
	buf      []*queued
	head     int
	n        int // entries in the ring, canceled ones included
	canceled int
}

func (q *fifo) push(m *queued) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = m
	q.n++
}

func (q *fifo) grow() {
	size := 2 * len(q.buf)
	if size < 16 {
		size = 16
	}
	nb := make([]*queued, size)
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

// pop returns the oldest entry, canceled or not, or nil.
func (q *fifo) pop() *queued {
	if q.n == 0 {
		return nil
	}
	m := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if m.canceled {
		q.canceled--
	}
	if q.n == 0 {
		q.head = 0
	}
	return m
}

// cancel marks m canceled; the caller has checked m is in the ring.
func (q *fifo) cancel(m *queued) {
	m.canceled = true
	m.payload = nil
	q.canceled++
	if q.canceled > 64 && q.canceled > q.n/2 {
		q.compact()
	}
}

func (q *fifo) compact() {
	live := 0
	for i := 0; i < q.n; i++ {
		j := (q.head + i) % len(q.buf)
		if m := q.buf[j]; !m.canceled {
			q.buf[(q.head+live)%len(q.buf)] = m
			live++
		}
	}
	for i := live; i < q.n; i++ {
		q.buf[(q.head+i)%len(q.buf)] = nil
	}
	q.n, q.canceled = live, 0
}

// each calls f for every live entry, oldest first.
func (q *fifo) each(f func(m *queued)) {
	for i := 0; i < q.n; i++ {
		if m := q.buf[(q.head+i)%len(q.buf)]; !m.canceled {
			f(m)
		}
	}
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
