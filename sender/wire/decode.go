package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
)

const (
	// spareMax caps the reassembly buffer kept for reuse between messages;
	// spareMaxBudgeted when the decoder shares a Budget.
	spareMax         = 4 << 20
	spareMaxBudgeted = 64 << 10
	// maxInterned caps how many distinct names a RequestDecoder keeps as
	// strings, so a steady set of names costs no allocation per request.
	maxInterned = 256
)

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// midFrame turns an EOF inside a frame into io.ErrUnexpectedEOF.
func midFrame(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// frameReader reads length-prefixed frames. A frame that fits in the
// bufio.Reader's buffer is returned in place; a larger one is copied into
// one reused buffer of at most MaxFrameBody bytes.
type frameReader struct {
	r   *bufio.Reader
	buf []byte

	// Growing (see Grow): src is what r reads, nil once grown or when the
	// reader never grows; growNow is set when a read filled r's buffer.
	src     io.Reader
	growTo  int
	growNow bool

	// A frame larger than r's buffer being read into buf: big bytes, got
	// of them read so far (big 0: none).
	big, got int
}

// grow switches to a buffer of growTo bytes reading src, after what r
// still holds.
func (f *frameReader) grow() {
	held, _ := f.r.Peek(f.r.Buffered())
	f.r = bufio.NewReaderSize(&prefixReader{held: bytes.Clone(held), r: f.src}, f.growTo)
	f.src, f.growNow = nil, false
}

// prefixReader reads held, then r.
type prefixReader struct {
	held []byte
	r    io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.held) > 0 {
		n := copy(b, p.held)
		p.held = p.held[n:]
		return n, nil
	}
	return p.r.Read(b)
}

func (f *frameReader) setGrow(src io.Reader, size int) {
	if size > f.r.Size() {
		f.src, f.growTo = src, size
	}
}

// next returns the body of the next frame, valid until the next call (the
// next read from r).
//
// A read error that is not the end of the stream (a read deadline, which is
// how a Client interrupts a caller reading its own reply) leaves the frame
// where it was: the next call goes on with it, and no byte is lost.
func (f *frameReader) next() ([]byte, error) {
	if f.big > 0 {
		return f.readBig()
	}
	if f.growNow {
		f.grow()
	}
	hdr, err := f.r.Peek(2)
	if err != nil {
		if len(hdr) > 0 {
			return nil, midFrame(err)
		}
		return nil, err
	}
	if f.src != nil && f.r.Buffered() == f.r.Size() {
		// The read that brought this frame filled the buffer: frames come
		// faster than they are read. Grow before the next frame (this
		// one may be returned in place).
		f.growNow = true
	}
	n := int(hdr[0])<<8 | int(hdr[1])
	if 2+n <= f.r.Size() {
		// In place, sparing a copy of every frame. Peek reads what is
		// missing; Discard then only moves the read position.
		b, err := f.r.Peek(2 + n)
		if err != nil {
			return nil, midFrame(err)
		}
		f.r.Discard(2 + n)
		return b[2:], nil
	}
	f.r.Discard(2)
	if cap(f.buf) < n {
		f.buf = make([]byte, max(n, min(2*cap(f.buf), MaxFrameBody), 512))
	}
	f.big, f.got = n, 0
	return f.readBig()
}

// readBig reads a frame larger than r's buffer into buf, going on from
// where an earlier call stopped.
func (f *frameReader) readBig() ([]byte, error) {
	b := f.buf[:f.big]
	for f.got < f.big {
		k, err := f.r.Read(b[f.got:])
		f.got += k
		if err != nil && f.got < f.big {
			return nil, midFrame(err)
		}
	}
	f.big = 0
	return b, nil
}

// partial is one multipart message being reassembled, or being discarded.
type partial struct {
	typ     byte // type of the header frame
	addr    uint32
	name    string
	push    bool
	total   uint32
	buf     []byte
	trace   []byte
	traced  bool
	discard bool // rejected: drop its parts until the last one
	orphan  bool // parts with no header: ErrOrphanPart at the last one
}

// reassembly holds the incomplete multipart messages of one connection,
// keyed by session, within the limits.
type reassembly struct {
	lim   Limits
	fatal bool   // every reassembly error is fatal (the response side)
	what  string // "request" or "response", for messages
	m     map[uint32]*partial
	pool  []*partial
	spare []byte   // a reassembly buffer kept for the next message
	done  *partial // returned by the last call to Next, recycled on the next
	held  int64    // bytes of buffer (partials and done, not spare) charged to lim.Budget
}

// charge counts n more bytes of buffer against the shared budget.
func (a *reassembly) charge(n int64) bool {
	if b := a.lim.Budget; b != nil && !b.take(n) {
		return false
	}
	a.held += n
	return true
}

func (a *reassembly) uncharge(n int64) {
	if b := a.lim.Budget; b != nil {
		b.give(n)
	}
	a.held -= n
}

// close returns every buffer and what they were charged to the budget.
func (a *reassembly) close() {
	if b := a.lim.Budget; b != nil {
		b.give(a.held)
	}
	a.held = 0
	a.m, a.pool, a.spare, a.done = nil, nil, nil, nil
}

func newReassembly(l Limits, fatal bool, what string) reassembly {
	return reassembly{lim: l.resolve(), fatal: fatal, what: what, m: make(map[uint32]*partial)}
}

func (a *reassembly) errorf(err error, t byte, session uint32, push bool, format string, args ...any) *DecodeError {
	e := decodeErr(err, t, session, a.fatal, "multipart %s session %d: "+format, append([]any{a.what, session}, args...)...)
	e.push = push
	return e
}

// release recycles the message handed out by the previous call to Next.
func (a *reassembly) release() {
	if a.done != nil {
		a.put(a.done)
		a.done = nil
	}
}

func (a *reassembly) get() *partial {
	if n := len(a.pool); n > 0 {
		p := a.pool[n-1]
		a.pool = a.pool[:n-1]
		return p
	}
	return new(partial)
}

func (a *reassembly) put(p *partial) {
	a.dropBuffer(p)
	*p = partial{trace: p.trace[:0]}
	if len(a.pool) < a.lim.MaxPartial {
		a.pool = append(a.pool, p)
	}
}

// dropBuffer takes p's buffer away, keeping it as the spare when it is
// bigger than the current one and not too big to hold on to.
func (a *reassembly) dropBuffer(p *partial) {
	c := cap(p.buf)
	a.uncharge(int64(c))
	if c > cap(a.spare) && c <= a.spareMax() {
		a.spare = p.buf[:0]
	}
	p.buf = nil
}

// spareMax is the largest buffer kept for reuse. The spare is not charged
// to a shared budget (an idle connection would hold budget that others
// need), so with one it is kept small: it is part of a connection's fixed
// cost, like its read buffer.
func (a *reassembly) spareMax() int {
	if a.lim.Budget != nil {
		return spareMaxBudgeted
	}
	return spareMax
}

// start registers the header of a multipart message. It returns nil and an
// error when the message is rejected; its parts are then discarded.
func (a *reassembly) start(t byte, session, total uint32, push bool) (*partial, error) {
	if p, ok := a.m[session]; ok {
		p.discard = true
		a.dropBuffer(p)
		return nil, a.errorf(ErrBadReassembly, t, session, push, "header while a message with this session is in progress")
	}
	if len(a.m) >= a.lim.MaxPartial {
		e := a.errorf(ErrTooManyPartial, t, session, push, "%d multipart messages already incomplete, limit %d", len(a.m), a.lim.MaxPartial)
		e.Fatal = true
		return nil, e
	}
	p := a.get()
	p.typ, p.total, p.push = t, total, push
	a.m[session] = p
	if uint64(total) > uint64(a.lim.MaxMessageSize) {
		p.discard = true
		return nil, a.errorf(ErrMessageTooLarge, t, session, push, "%d bytes, limit %d", total, a.lim.MaxMessageSize)
	}
	// Nothing is reserved on the header's word: the buffer grows with the
	// bytes that arrive (see grow), so a header declaring 16 MiB followed
	// by nothing costs a few bytes.
	if a.spare != nil && a.charge(int64(cap(a.spare))) {
		p.buf = a.spare
	}
	a.spare = nil
	return p, nil
}

// grow makes room in p.buf for n more bytes, charging the budget; false
// when the budget has no room.
func (a *reassembly) grow(p *partial, n int) bool {
	c := growCap(cap(p.buf), len(p.buf)+n, p.total)
	if c == cap(p.buf) {
		return true
	}
	if !a.charge(int64(c - cap(p.buf))) {
		return false
	}
	p.buf = append(make([]byte, 0, c), p.buf...)
	return true
}

// growCap is the capacity for need bytes of a message of total bytes: at
// most twice what has arrived, never more than total, so memory follows
// what the peer actually sent and not what its header claimed.
func growCap(have, need int, total uint32) int {
	if need <= have {
		return have
	}
	return min(max(need, 2*have), int(total))
}

// reject makes the parts of session be dropped silently, after its header
// was refused, so the sender gets one error rather than one per part. When
// the partial limit is reached the parts will be reported as orphans instead.
func (a *reassembly) reject(session uint32) {
	if p, ok := a.m[session]; ok {
		p.discard = true
		a.dropBuffer(p)
		return
	}
	if len(a.m) < a.lim.MaxPartial {
		p := a.get()
		p.discard = true
		a.m[session] = p
	}
}

// part adds one part. It returns the message when the part completed it,
// nil and nil when more parts are due or the part was discarded.
func (a *reassembly) part(t byte, session uint32, data []byte, last bool) (*partial, error) {
	p, ok := a.m[session]
	if !ok {
		if a.fatal {
			return nil, a.errorf(ErrBadReassembly, t, session, false, "part without a header")
		}
		if last {
			return nil, a.errorf(ErrOrphanPart, t, session, false, "part without a header")
		}
		// Like skynet, take the parts for a message of their own and answer
		// once, at its last part; keep none of their bytes. A lone last part
		// is ErrOrphanPart above: skynet finds no address for it.
		if len(a.m) >= a.lim.MaxPartial {
			e := a.errorf(ErrTooManyPartial, t, session, false, "part without a header, and %d multipart messages already incomplete, limit %d", len(a.m), a.lim.MaxPartial)
			e.Fatal = true
			return nil, e
		}
		p = a.get()
		p.typ, p.discard, p.orphan = t, true, true
		a.m[session] = p
		return nil, nil
	}
	if p.discard {
		if !last {
			return nil, nil
		}
		orphan := p.orphan
		delete(a.m, session)
		a.put(p)
		if orphan {
			// skynet concatenates them with no size to check against:
			// "Invalid large req", unlike a lone last part.
			return nil, a.errorf(ErrBadReassembly, t, session, false, "parts without a header")
		}
		return nil, nil
	}
	if n := uint64(len(p.buf)) + uint64(len(data)); n > uint64(p.total) {
		push, total := p.push, p.total
		if last {
			delete(a.m, session)
			a.put(p)
			return nil, a.errorf(ErrBadReassembly, t, session, push, "parts total %d bytes, header said %d", n, total)
		}
		p.discard = true
		a.dropBuffer(p)
		return nil, a.errorf(ErrBadReassembly, t, session, push, "parts total at least %d bytes, header said %d", n, total)
	}
	if !a.grow(p, len(data)) {
		push := p.push
		if last {
			delete(a.m, session)
			a.put(p)
		} else {
			p.discard = true
			a.dropBuffer(p)
		}
		return nil, a.errorf(ErrBudget, t, session, push, "%d bytes held across connections, budget %d", a.lim.Budget.Used(), a.lim.Budget.Max())
	}
	p.buf = append(p.buf, data...)
	if !last {
		return nil, nil
	}
	delete(a.m, session)
	if len(p.buf) != int(p.total) {
		n, total, push := len(p.buf), p.total, p.push
		a.put(p)
		return nil, a.errorf(ErrBadReassembly, t, session, push, "parts total %d bytes, header said %d", n, total)
	}
	a.done = p
	return p, nil
}

// RequestDecoder reads requests and pushes, the receiving side of a
// connection. See Next.
type RequestDecoder struct {
	fr     frameReader
	asm    reassembly
	req    Request
	trace  []byte
	traced bool
	names  map[string]string
	err    error // sticky fatal error
}

// NewRequestDecoder returns a decoder reading frames from r within l.
func NewRequestDecoder(r *bufio.Reader, l Limits) *RequestDecoder {
	return &RequestDecoder{
		fr:    frameReader{r: r},
		asm:   newReassembly(l, false, "request"),
		names: make(map[string]string),
	}
}

// Close returns the decoder's buffers and what they were charged to
// Limits.Budget. Next must not be called after Close.
func (d *RequestDecoder) Close() { d.asm.close() }

// Grow makes the decoder switch, once, to a read buffer of size bytes when
// a read fills the buffer of the bufio.Reader it was made with, which must
// read src: a connection starts with a small buffer, which costs little
// while it is idle, and takes a larger one when messages arrive faster
// than they are read, which needs fewer reads.
func (d *RequestDecoder) Grow(src io.Reader, size int) { d.fr.setGrow(src, size) }

// Buffered returns how many bytes have been read and not yet decoded.
func (d *RequestDecoder) Buffered() int { return d.fr.r.Buffered() }

// NextBuffered reports whether the next frame is a whole single-frame
// request already in the buffer: Next will then return it without reading.
func (d *RequestDecoder) NextBuffered() bool {
	r := d.fr.r
	if d.err != nil || r.Buffered() < 3 {
		return false
	}
	h, _ := r.Peek(3) // buffered: Peek does not read
	n := int(h[0])<<8 | int(h[1])
	return n > 0 && (h[2] == typeReqNumber || h[2] == typeReqName) && r.Buffered() >= 2+n
}

// Next returns the next complete request. A trace frame applies to the next
// request or multipart header; multipart requests are reassembled by session
// even when other frames come between their parts, and returned when their
// last part arrives. The returned Request, its Payload and Trace are only
// valid until the next call to Next (buffers are reused); Name is an
// ordinary string and may be kept.
//
// Errors: io.EOF at a frame boundary, io.ErrUnexpectedEOF inside a frame,
// other read errors as they are, or a *DecodeError. A non-fatal DecodeError
// leaves the decoder usable: as skynet does, the caller may reply an error to
// its Session (when non-zero and not IsPush) and call Next again; the
// remaining parts of a rejected multipart request are read and dropped.
func (d *RequestDecoder) Next() (*Request, error) {
	if d.err != nil {
		return nil, d.err
	}
	d.asm.release()
	for {
		body, err := d.fr.next()
		if err != nil {
			return nil, err
		}
		if len(body) == 0 {
			return nil, decodeErr(ErrEmptyFrame, 0, 0, false, "zero-length request frame")
		}
		var req *Request
		switch t := body[0]; t {
		case typeReqNumber, typeReqName:
			req, err = d.single(body)
		case typeMultiNumber, typeMultiPushNum, typeMultiName, typeMultiPushName:
			err = d.header(body)
		case typePart, typeLastPart:
			req, err = d.part(body)
		case typeTrace:
			err = d.setTrace(body)
		default:
			err = decodeErr(ErrUnknownType, t, 0, false, "unknown request frame type 0x%02x (%d bytes)", t, len(body))
		}
		if err != nil {
			if e, ok := err.(*DecodeError); ok && e.Fatal {
				d.err = err
			}
			return nil, err
		}
		if req != nil {
			return req, nil
		}
	}
}

func (d *RequestDecoder) takeTrace() ([]byte, bool) {
	traced := d.traced
	d.traced = false
	return d.trace, traced
}

func (d *RequestDecoder) setTrace(body []byte) error {
	tag := body[1:]
	if len(tag) > MaxTraceTag {
		d.traced = false
		return decodeErr(ErrTraceTooLong, typeTrace, 0, false, "trace tag is %d bytes, limit %d", len(tag), MaxTraceTag)
	}
	d.trace = append(d.trace[:0], tag...)
	d.traced = true
	return nil
}

// intern returns b as a string, allocating only for names not seen before.
func (d *RequestDecoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.names) < maxInterned {
		d.names[s] = s
	}
	return s
}

func shortFrame(t byte, got, want int) error {
	return decodeErr(ErrShortFrame, t, 0, false, "request frame type 0x%02x is %d bytes, want at least %d", t, got, want)
}

// address parses the address of a request-start frame: a u32 for numeric
// types, namelen and name for string types (high bit set). It returns the
// rest of the body, which starts with the session.
func (d *RequestDecoder) address(body []byte, fixed int) (addr uint32, name []byte, rest []byte, err error) {
	t := body[0]
	if t&0x80 == 0 {
		if len(body) < 5+fixed {
			return 0, nil, nil, shortFrame(t, len(body), 5+fixed)
		}
		return le32(body[1:]), nil, body[5:], nil
	}
	if len(body) < 2 {
		return 0, nil, nil, shortFrame(t, len(body), 2+fixed)
	}
	nl := int(body[1])
	if len(body) < 2+nl+fixed {
		return 0, nil, nil, decodeErr(ErrShortFrame, t, 0, false, "request frame type 0x%02x is %d bytes, with a name of %d bytes want at least %d", t, len(body), nl, 2+nl+fixed)
	}
	rest = body[2+nl:]
	if nl == 0 {
		s := le32(rest)
		e := decodeErr(ErrNameLength, t, s, false, "request session %d: empty name", s)
		e.push = s == 0 || t == typeMultiPushName
		return 0, nil, nil, e
	}
	return 0, body[2 : 2+nl], rest, nil
}

func (d *RequestDecoder) single(body []byte) (*Request, error) {
	trace, traced := d.takeTrace()
	addr, name, rest, err := d.address(body, 4)
	if err != nil {
		return nil, err
	}
	session := le32(rest)
	payload := rest[4:]
	if len(payload) > d.asm.lim.MaxMessageSize {
		e := decodeErr(ErrMessageTooLarge, body[0], session, false, "request session %d: %d bytes, limit %d", session, len(payload), d.asm.lim.MaxMessageSize)
		e.push = session == 0
		return nil, e
	}
	d.req = Request{Address: addr, Session: session, Push: session == 0, Payload: payload}
	if name != nil {
		d.req.Name = d.intern(name)
	}
	if traced {
		d.req.Trace = trace
	}
	return &d.req, nil
}

func (d *RequestDecoder) header(body []byte) error {
	t := body[0]
	push := t == typeMultiPushNum || t == typeMultiPushName
	trace, traced := d.takeTrace()
	addr, name, rest, err := d.address(body, 8)
	if err != nil {
		if e, ok := err.(*DecodeError); ok && e.Err == ErrNameLength {
			d.asm.reject(e.Session)
		}
		return err
	}
	if len(rest) != 8 {
		d.asm.reject(le32(rest))
		e := decodeErr(ErrFrameSize, t, le32(rest), false, "multipart request header type 0x%02x is %d bytes, want %d", t, len(body), len(body)-len(rest)+8)
		e.push = push
		return e
	}
	session, total := le32(rest), le32(rest[4:])
	if session == 0 || session > maxSession {
		d.asm.reject(session)
		e := decodeErr(ErrInvalidSession, t, session, false, "multipart request header with session %d", session)
		e.push = push
		return e
	}
	p, err := d.asm.start(t, session, total, push)
	if err != nil {
		return err
	}
	p.addr = addr
	if name != nil {
		p.name = d.intern(name)
	}
	if traced {
		p.trace = append(p.trace[:0], trace...)
		p.traced = true
	}
	return nil
}

func (d *RequestDecoder) part(body []byte) (*Request, error) {
	t := body[0]
	if len(body) < 5 {
		return nil, shortFrame(t, len(body), 5)
	}
	p, err := d.asm.part(t, le32(body[1:]), body[5:], t == typeLastPart)
	if p == nil || err != nil {
		return nil, err
	}
	d.req = Request{Address: p.addr, Name: p.name, Session: le32(body[1:]), Push: p.push, Payload: p.buf}
	if p.traced {
		d.req.Trace = p.trace
	}
	return &d.req, nil
}

// ResponseDecoder reads responses, the sending side of a connection. See
// Next.
type ResponseDecoder struct {
	fr   frameReader
	asm  reassembly
	resp Response
	err  error // sticky fatal error
}

// NewResponseDecoder returns a decoder reading frames from r within l.
func NewResponseDecoder(r *bufio.Reader, l Limits) *ResponseDecoder {
	return &ResponseDecoder{fr: frameReader{r: r}, asm: newReassembly(l, true, "response")}
}

// Grow is RequestDecoder.Grow.
func (d *ResponseDecoder) Grow(src io.Reader, size int) { d.fr.setGrow(src, size) }

// Next returns the next complete response, reassembling multipart responses
// by session. The Response and its Payload are only valid until the next
// call. Every malformed response is a fatal *DecodeError, as a real skynet
// sender treats it as a broken connection; once one is returned, Next keeps
// returning it. io errors are returned as for RequestDecoder.Next.
func (d *ResponseDecoder) Next() (*Response, error) {
	if d.err != nil {
		return nil, d.err
	}
	d.asm.release()
	for {
		resp, err := d.next()
		if err != nil {
			if _, ok := err.(*DecodeError); ok {
				d.err = err
			}
			return nil, err
		}
		if resp != nil {
			return resp, nil
		}
	}
}

func (d *ResponseDecoder) next() (*Response, error) {
	body, err := d.fr.next()
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, decodeErr(ErrEmptyFrame, 0, 0, true, "zero-length response frame")
	}
	if len(body) < 5 {
		return nil, decodeErr(ErrShortFrame, 0, 0, true, "response frame is %d bytes, want at least 5", len(body))
	}
	session, t, data := le32(body), body[4], body[5:]
	switch t {
	case typeRespError, typeRespOK:
		if len(data) > d.asm.lim.MaxMessageSize {
			return nil, decodeErr(ErrMessageTooLarge, t, session, true, "response session %d: %d bytes, limit %d", session, len(data), d.asm.lim.MaxMessageSize)
		}
		d.resp = Response{Session: session, OK: t == typeRespOK, Payload: data}
		return &d.resp, nil
	case typeRespMultiBegin:
		if len(body) != 9 {
			err := ErrShortFrame
			if len(body) > 9 {
				err = ErrFrameSize
			}
			return nil, decodeErr(err, t, session, true, "multipart response session %d: begin frame is %d bytes, want 9", session, len(body))
		}
		_, err := d.asm.start(t, session, le32(data), false)
		return nil, err
	case typeRespPart, typeRespLastPart:
		p, err := d.asm.part(t, session, data, t == typeRespLastPart)
		if p == nil || err != nil {
			return nil, err
		}
		d.resp = Response{Session: session, OK: true, Payload: p.buf}
		return &d.resp, nil
	default:
		return nil, decodeErr(ErrUnknownType, t, session, true, "response session %d: unknown type 0x%02x (%d bytes)", session, t, len(body))
	}
}
