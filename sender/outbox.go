package sender

// outbox is a node's write buffer: frames encoded while the node is ready,
// waiting for the connection's writer to take them in one batch. Each batch
// is a generation: the calls encoded in the current buffer have
// call.gen == gen and can still be withdrawn (cut out, never sent); once the
// writer takes the buffer, gen advances and its calls are in flight. It does
// no I/O. Guarded by node.mu.
type outbox struct {
	buf      []byte
	gen      uint64
	calls    []outCall // the calls in buf, in order
	msgs     int       // live messages in buf (withdrawn calls excluded)
	sends    int       // of which Sends
	bytes    int       // their payload bytes
	canceled int       // withdrawn calls whose frames are still in buf
	pushes   seqRanges // the write ordinals (node.seq) of the Sends in buf
}

// outCall records where a call's frames sit in outbox.buf, so that a call
// withdrawn before the writer takes the buffer is cut out and never sent.
type outCall struct {
	start, end int
	size       int
	w          *call
	canceled   bool
}

func newOutbox() outbox { return outbox{gen: 1} }

// append encodes one message, after its trace tag when tag is not nil. A
// call (w non-nil) records its generation and place, tag included, for
// withdraw.
func (o *outbox) append(addr uint32, name string, session uint32, push bool, payload []byte, w *call, seq uint64, tag []byte) {
	start := len(o.buf)
	o.buf = appendRequest(o.buf, addr, name, session, push, payload, tag)
	o.msgs++
	o.bytes += len(payload)
	if w == nil {
		o.sends++
		o.pushes.add(seq)
		return
	}
	w.gen, w.outIdx = o.gen, len(o.calls)
	o.calls = append(o.calls, outCall{start: start, end: len(o.buf), size: len(payload), w: w})
}

// holds reports whether w's frames are in the current buffer: not yet
// taken by a writer.
func (o *outbox) holds(w *call) bool { return w.gen == o.gen }

// withdraw marks w, which o holds, as cut out and returns its payload size.
func (o *outbox) withdraw(w *call) int {
	oc := &o.calls[w.outIdx]
	oc.canceled = true
	o.canceled++
	o.msgs--
	o.bytes -= oc.size
	return oc.size
}

// batch is what a writer took from the outbox.
type batch struct {
	frames             []byte
	gen                uint64
	msgs, sends, bytes int
	pushes             seqRanges // write ordinals of its Sends, owned by the writer until its next take
}

// take hands the buffer to a writer, without the frames of withdrawn calls,
// and starts the next generation in the writer's previous batch's buffers.
func (o *outbox) take(spare *batch) batch {
	b := batch{frames: o.buf, gen: o.gen, msgs: o.msgs, sends: o.sends, bytes: o.bytes, pushes: o.pushes}
	o.pushes = spare.pushes
	o.pushes.reset()
	spare.pushes = seqRanges{}
	buf := spare.frames
	spare.frames = nil
	if o.canceled > 0 {
		b.frames = o.compact(buf[:0])
		buf = o.buf
	}
	o.buf = buf[:0]
	o.next()
	return b
}

// drop empties the outbox, for failing what it holds: it returns the calls
// not withdrawn and the counts of what was dropped.
func (o *outbox) drop(calls []*call) (_ []*call, msgs, sends, bytes int) {
	for i := range o.calls {
		if oc := &o.calls[i]; !oc.canceled {
			calls = append(calls, oc.w)
		}
	}
	msgs, sends, bytes = o.msgs, o.sends, o.bytes
	o.reset()
	return calls, msgs, sends, bytes
}

// reset empties the buffer and starts the next generation.
func (o *outbox) reset() {
	o.buf = o.buf[:0]
	o.next()
}

func (o *outbox) next() {
	clear(o.calls)
	o.calls = o.calls[:0]
	o.gen++
	o.msgs, o.sends, o.bytes, o.canceled = 0, 0, 0, 0
	o.pushes.reset()
}

// compact copies buf without the frames of withdrawn calls.
func (o *outbox) compact(dst []byte) []byte {
	prev := 0
	for _, oc := range o.calls {
		if oc.canceled {
			dst = append(dst, o.buf[prev:oc.start]...)
			prev = oc.end
		}
	}
	return append(dst, o.buf[prev:]...)
}
