package sender

import "time"

// queued is a message waiting in a node's FIFO until the node is ready and
// confirmed. Only this slow path copies payloads and allocates.
type queued struct {
	message
	body               // the Client's own copies
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

// handOffFIFOLocked appends every message of the FIFO to the outbox, in
// order, and returns how many. becomeReady calls it in the one critical
// section that makes the new connection the node's, before submit can
// append there: nothing submitted later overtakes a queued message.
func (n *node) handOffFIFOLocked() int {
	handed := 0
	if n.fifo.n > 0 {
		now := time.Now()
		for q := n.fifo.pop(); q != nil; q = n.fifo.pop() {
			if q.canceled {
				continue
			}
			n.appendLocked(&q.message, q.body)
			n.m.queueWait.Observe(now.Sub(q.enq).Seconds())
			handed++
		}
	}
	return handed
}
