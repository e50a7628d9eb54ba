package sender

import "github.com/skycall-io/skycall/sender/wire"

// outbox is a node's write buffer: frames encoded while the node is ready,
// waiting for the connection's writer to take them in one batch. Each batch
// is a generation: the calls encoded in the current buffer have
// call.gen == gen and can still be withdrawn (cut out, never sent); once the
// writer takes the buffer, gen advances and its calls are in flight. It does
// no I/O. Guarded by node.mu.
//
// The frames are kept in chunks of up to outboxChunk bytes, not in one
// buffer: one buffer holding a backlog of tens of megabytes (the queue
// allows 64 MiB) would be grown by copying it again and again. The chunks
// of a batch the writer has written come back as free chunks.
type outbox struct {
	chunks   [][]byte // the frames in order; the last one is being filled
	free     [][]byte // empty chunks, to fill next
	gen      uint64
	calls    []outCall // the calls in chunks, in order
	msgs     int       // live messages in chunks (withdrawn calls excluded)
	sends    int       // of which Sends
	bytes    int       // their payload bytes
	canceled int       // withdrawn calls whose frames are still in chunks
	pushes   seqRanges // the write ordinals (node.seq) of the Sends in chunks
}

// outboxChunk is the size an outbox chunk grows to: one Write of the
// writer (writeChunk). A message larger than that has a chunk of its own.
const outboxChunk = writeChunk

// outCall records where a call's frames sit in outbox.chunks, so that a
// call withdrawn before the writer takes the buffer is cut out and never
// sent. A message's frames are never split between chunks.
type outCall struct {
	chunk      int
	start, end int
	size       int
	w          *call
	canceled   bool
}

func newOutbox() outbox { return outbox{gen: 1} }

// appendLocked encodes m with its bytes b, after its trace tag if any, into
// the outbox and, for a call, enters it in the in-flight table.
func (n *node) appendLocked(m *message, b body) {
	if m.push && n.conn != nil && n.conn.peer == "" {
		// skynet's clusteragent ignores the tag of a push and keeps it for
		// the next call on the connection, which it would then trace
		// under this push's trace (see docs/tracing.md).
		b.tag = nil
	}
	s := n.sessions.Next()
	n.seq++
	n.out.append(m, b, s, n.seq)
	if w := m.call; w != nil {
		w.session, w.where, w.q, w.seq = s, whereOut, nil, n.seq
		n.inflight.add(w)
	}
}

// append encodes m with its bytes b, after its trace tag if any, with its
// session and write ordinal. A call records its generation and place, tag
// included, for withdraw.
func (o *outbox) append(m *message, b body, session uint32, seq uint64) {
	// Room for the frames: payload, name, tag, and the headers of up to a
	// part per wire.MultiPart bytes.
	need := len(b.payload) + len(m.name) + len(b.tag) + 32 + 16*(len(b.payload)>>15)
	i := len(o.chunks) - 1
	if i < 0 || len(o.chunks[i]) > 0 && len(o.chunks[i])+need > outboxChunk {
		o.chunks = append(o.chunks, o.chunk())
		i++
	}
	start := len(o.chunks[i])
	o.chunks[i] = appendRequest(o.chunks[i], m, b, session)
	o.msgs++
	o.bytes += len(b.payload)
	w := m.call
	if w == nil {
		o.sends++
		o.pushes.add(seq)
		return
	}
	w.gen, w.outIdx = o.gen, len(o.calls)
	o.calls = append(o.calls, outCall{chunk: i, start: start, end: len(o.chunks[i]), size: len(b.payload), w: w})
}

// appendRequest encodes m with its bytes b as the request of session, after
// its trace tag frame if any; the wire.Request lives on the stack, so
// encoding allocates nothing.
func appendRequest(dst []byte, m *message, b body, session uint32) []byte {
	r := wire.Request{Address: m.addr, Name: m.name, Session: session, Push: m.push, Payload: b.payload, Trace: b.tag}
	out, err := wire.AppendRequest(dst, &r)
	if err != nil {
		// Sizes, names and sessions were checked before queueing.
		panic("skycall: internal error: " + err.Error())
	}
	return out
}

// chunk returns an empty chunk: a free one, or none yet (append allocates
// what the first message needs, and the chunk grows up to about
// outboxChunk like any slice: a node that sends little keeps little).
func (o *outbox) chunk() []byte {
	k := len(o.free) - 1
	if k < 0 {
		return nil
	}
	c := o.free[k]
	o.free[k] = nil
	o.free = o.free[:k]
	return c
}

// recycle gives the writer's written chunks back as free chunks (not those
// a single large message made large) and returns the emptied list for
// reuse.
func (o *outbox) recycle(chunks [][]byte) [][]byte {
	for i, c := range chunks {
		if cap(c) > 0 && cap(c) <= 2*outboxChunk {
			o.free = append(o.free, c[:0])
		}
		chunks[i] = nil
	}
	return chunks[:0]
}

// freeBytes is the room of the free chunks.
func (o *outbox) freeBytes() int {
	n := 0
	for _, c := range o.free {
		n += cap(c)
	}
	return n
}

// trim keeps free chunks of at most keep bytes in all, for an idle node.
func (o *outbox) trim(keep int) {
	for i, c := range o.free {
		if keep -= cap(c); keep < 0 {
			clear(o.free[i:])
			o.free = o.free[:i]
			return
		}
	}
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
	chunks             [][]byte // the frames, in order; some may be empty
	gen                uint64
	msgs, sends, bytes int
	pushes             seqRanges // write ordinals of its Sends, owned by the writer until its next take
}

// take hands the chunks to a writer, without the frames of withdrawn
// calls, and starts the next generation; the chunks of the writer's
// previous batch become free chunks.
func (o *outbox) take(spare *batch) batch {
	if o.canceled > 0 {
		o.compact()
	}
	b := batch{chunks: o.chunks, gen: o.gen, msgs: o.msgs, sends: o.sends, bytes: o.bytes, pushes: o.pushes}
	o.pushes = spare.pushes
	o.pushes.reset()
	spare.pushes = seqRanges{}
	o.chunks = o.recycle(spare.chunks)
	spare.chunks = nil
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

// reset empties the chunks and starts the next generation.
func (o *outbox) reset() {
	o.chunks = o.recycle(o.chunks)
	o.next()
}

func (o *outbox) next() {
	clear(o.calls)
	o.calls = o.calls[:0]
	o.gen++
	o.msgs, o.sends, o.bytes, o.canceled = 0, 0, 0, 0
	o.pushes.reset()
}

// compact cuts the frames of withdrawn calls out of their chunks, in place.
func (o *outbox) compact() {
	ci, w, prev := -1, 0, 0 // the chunk being compacted, where to write, where to read next
	end := func() {
		if ci >= 0 {
			c := o.chunks[ci]
			o.chunks[ci] = c[:w+copy(c[w:], c[prev:])]
		}
	}
	for _, oc := range o.calls {
		if !oc.canceled {
			continue
		}
		if oc.chunk != ci {
			end()
			ci, w, prev = oc.chunk, oc.start, oc.end
			continue
		}
		w += copy(o.chunks[ci][w:], o.chunks[ci][prev:oc.start])
		prev = oc.end
	}
	end()
}
