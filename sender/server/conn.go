package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/wire"
)

// pendingLimit is the size of queued replies beyond which handlers
// replying on a connection wait for its writer. One reply of any size is
// always accepted into an emptier buffer.
const pendingLimit = 4 << 20

// keepBuffer is the largest write buffer kept for reuse after a write: at
// least the replies of 64 pipelined 4 KiB calls, so that such a batch does
// not grow a new buffer every time. A connection keeps two buffers at most.
const keepBuffer = 1 << 20

// inlineFor is how long (up to twice that) a handler may run on a
// connection's reader goroutine (see service.enqueue) before reading
// moves to a new goroutine, so that a slow or blocked handler holds up neither the
// connection's messages for other services nor a later message it waits
// for.
var inlineFor = time.Millisecond // a variable for tests

// errStopped is what the reader sees once Shutdown stopped reading.
var errStopped = errors.New("skycall: server stopped reading")

// connState is where an accepted connection is in its life, as net/http's
// ConnState: it only moves forward, open to draining to closed, or open to
// closed.
type connState uint8

const (
	// connOpen: reading requests, handing them to services, writing replies.
	connOpen connState = iota
	// connDraining: Shutdown stopped the reader; the writer closes the
	// connection once every request received is handled and its reply
	// written.
	connDraining
	// connClosed: closed; replies still pending were dropped.
	connClosed
)

var connStateNames = [...]string{"open", "draining", "closed"}

func (s connState) String() string { return connStateNames[s] }

// startConn sets up an accepted connection and starts its reader and
// writer, unless the Server is stopping.
func (s *Server) startConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		if s.opts.keepAlive > 0 {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{
				Enable:   true,
				Idle:     s.opts.keepAlive,
				Interval: s.opts.keepAlive,
				Count:    -1, // system default
			})
		} else {
			tc.SetKeepAlive(false)
		}
	}
	ip := peerIP(nc.RemoteAddr())
	if !s.admit(nc, ip) {
		return
	}
	if s.opts.tls != nil {
		nc = tls.Server(nc, s.opts.tls)
	}
	ctx, cancel := context.WithCancel(s.baseCtx)
	c := &conn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr(),
		ctx:    ctx,
		cancel: cancel,
		stopCh: make(chan struct{}),
	}
	c.peer = c.remote.String()
	c.cond.L = &c.mu

	c.ip = ip
	s.mu.Lock()
	s.admitting--
	if s.stopping {
		s.releaseSlotLocked(ip)
		s.mu.Unlock()
		cancel()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	s.log.V(1).Info("Accepted connection", "peer", c.peer)
	go c.readLoop()
	go c.writeLoop()
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.releaseSlotLocked(c.ip)
	}
	s.mu.Unlock()
}

// conn is one accepted connection: a reader goroutine that decodes
// requests and dispatches them, and a writer goroutine that writes replies.
type conn struct {
	s      *Server
	nc     net.Conn
	remote net.Addr
	peer   string
	ip     string          // the peer's IP address, for the per-peer connection limit
	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	// The reader: one goroutine at a time reads the connection, readLoop
	// or, after a hand-off, the goroutine handOffReading started; these
	// belong to it.
	dec *wire.RequestDecoder
	// The reader's last name lookup, in that service table: a connection
	// mostly addresses one service, and this spares a map lookup per
	// message.
	lastTab  *serviceTable
	lastName string
	lastSvc  *service
	// Between two messages: the sequential service whose turn, and pending
	// count, the reader kept after running a message itself, because the
	// next message was already buffered and nothing else waited for the
	// service (service.runInline). The next dispatch uses or gives back
	// both; the reader never blocks on a read while holding them.
	held    *service
	handOff *time.Timer   // ticks handOffTick while handlers run on the reader
	inline  atomic.Uint64 // odd while a handler runs on the reader goroutine; +2 per run
	seen    atomic.Uint64 // inline at handOffTick's last tick
	armed   atomic.Bool   // handOff is ticking

	stopRead atomic.Bool   // Shutdown: read no further request
	stopCh   chan struct{} // closed by stopReading and close: stop waiting for queues
	stopOnce sync.Once
	idled    bool // reader only: the idle timeout fired

	mu      sync.Mutex
	cond    sync.Cond // on mu: pending, state or (at 0) inflight changed
	state   connState // written only by setStateLocked
	pending []byte    // encoded replies waiting for the writer
	spare   []byte    // the writer's previous buffer, reused
	writing bool      // a Write is in progress (writer goroutine or replyNow)
	full    int       // handlers waiting in appendLocked for room in pending

	// inflight counts the messages handed to services and not yet done. It
	// is atomic, not under mu, so that a push handled on the reader costs no
	// lock; notOpen is set, under mu, as the state leaves open, and tells
	// the message that brings inflight to 0 to wake the writer waiting to
	// close the drained connection.
	inflight atomic.Int64
	notOpen  atomic.Bool
}

// setStateLocked is the one place a connection's state changes; it wakes
// the writer and everyone waiting on cond, and logs the change. A state
// never goes back.
func (c *conn) setStateLocked(s connState) bool {
	if s <= c.state {
		return false
	}
	c.s.log.V(1).Info("Connection state", "peer", c.peer, "from", c.state.String(), "to", s.String())
	c.state = s
	c.notOpen.Store(true)
	c.cond.Broadcast()
	return true
}

// dropHeld gives back the turn the reader kept, if any (held).
func (c *conn) dropHeld() {
	if held := c.held; held != nil {
		c.held = nil
		held.endInline()
	}
}

func (c *conn) readLoop() {
	c.dec = wire.NewRequestDecoder(bufio.NewReaderSize(connReader{c}, wire.ReadBufferSize), wire.Limits{
		MaxMessageSize: c.s.opts.maxMessageSize,
		MaxPartial:     c.s.opts.maxPartial,
		Budget:         c.s.partial,
	})
	c.dec.Grow(connReader{c}, wire.ReadBufferGrown)
	c.handOff = time.AfterFunc(time.Hour, c.handOffTick)
	c.handOff.Stop()
	c.read()
}

// read reads and dispatches requests until the connection ends, or until
// reading was handed to another goroutine while this one ran a handler.
func (c *conn) read() {
	defer c.s.wg.Done()
	for {
		r, err := c.dec.Next()
		if err != nil {
			c.dropHeld()
			if c.readFailed(err) {
				continue
			}
			break
		}
		if !c.dispatch(r) {
			return
		}
	}
	c.handOff.Stop()
	c.dec.Close() // give its reassembly bytes back to the Server's budget
	if c.stopRead.Load() {
		c.drain()
	} else {
		c.close()
	}
}

// inlineStart marks a handler running on the reader goroutine and makes
// sure handOffTick watches it; it returns the run's mark, for inlineEnd.
// Not a timer reset per run: resetting a timer to fire sooner wakes the
// netpoller, a syscall that costs more than the hand-off it replaces.
func (c *conn) inlineStart() uint64 {
	run := c.inline.Add(1)
	if !c.armed.Load() && c.armed.CompareAndSwap(false, true) {
		c.seen.Store(0)
		c.handOff.Reset(inlineFor)
	}
	return run
}

// inlineEnd ends the run started by inlineStart and reports whether the
// calling goroutine is still the reader: false when the handler ran so
// long that handOffTick gave reading to another goroutine.
func (c *conn) inlineEnd(run uint64) bool {
	return c.inline.CompareAndSwap(run, run+1)
}

// handOffTick runs every inlineFor while handlers run on the reader. A
// run seen at two ticks in a row has lasted at least inlineFor: it
// starts a new reader, and the goroutine running the handler stops reading
// when the handler returns. Without runs since the last tick it stops
// ticking until the next run.
func (c *conn) handOffTick() {
	run := c.inline.Load()
	if run%2 == 1 && run == c.seen.Load() && c.inline.CompareAndSwap(run, run+1) {
		// The goroutine running the handler is counted in wg: Add is safe
		// even while Close waits.
		c.s.wg.Add(1)
		go c.read()
		run++
	}
	if prev := c.seen.Swap(run); run%2 == 1 || run != prev {
		c.handOff.Reset(inlineFor)
		return
	}
	c.armed.Store(false)
	// A run that started meanwhile saw armed and did not arm.
	if c.inline.Load() != run && c.armed.CompareAndSwap(false, true) {
		c.handOff.Reset(inlineFor)
	}
}

// readFailed logs a decode or read error and reports whether the stream is
// still usable.
func (c *conn) readFailed(err error) bool {
	log := c.s.log
	var de *wire.DecodeError
	if errors.As(err, &de) {
		c.s.metrics.reject(rejectReason(de.Err))
		if de.Fatal {
			log.Error(err, "Closing connection: the request stream cannot be decoded", "peer", c.peer,
				"type", de.Type, "session", de.Session)
			return false
		}
		// The stream is in sync: answer the caller, as skynet does, so that
		// its call fails now instead of hanging. Pushes expect no answer.
		if de.Session != 0 && !de.IsPush() {
			var text []byte
			switch {
			case errors.Is(de.Err, wire.ErrOrphanPart):
				// skynet takes the parts for a request with no address.
				text = []byte(wire.TextInvalidName)
			case errors.Is(de.Err, wire.ErrBadReassembly):
				text = []byte(wire.TextInvalidLargeReq)
			case errors.Is(de.Err, wire.ErrBudget):
				text = fmt.Appendf(nil, "node %s is busy: requests being received on all its connections hold %d bytes, limit %d; retry later",
					c.s.nodeName, c.s.partial.Used(), c.s.partial.Max())
			case errors.Is(de.Err, wire.ErrMessageTooLarge):
				text = fmt.Appendf(nil, "message too large: node %s accepts requests of at most %d bytes",
					c.s.nodeName, c.s.opts.maxMessageSize)
			default:
				text = fmt.Appendf(nil, "skycall: malformed request: %v", err)
			}
			c.reply(de.Session, false, text)
		}
		log.Info("Dropped a malformed request", "peer", c.peer, "type", de.Type, "session", de.Session, "err", err.Error())
		return true
	}
	switch {
	case c.stopRead.Load():
	case c.idled:
		log.Info("Closing idle connection", "peer", c.peer, "idleTimeout", c.s.opts.idleTimeout)
	case errors.Is(err, io.EOF):
		log.V(1).Info("Peer closed the connection", "peer", c.peer)
	case errors.Is(err, io.ErrUnexpectedEOF):
		log.Info("Peer disconnected in the middle of a request", "peer", c.peer)
	case errors.Is(err, net.ErrClosed):
		// Closed by the Server itself.
	default:
		log.Info("Closing connection: read failed", "peer", c.peer, "err", err.Error())
	}
	return false
}

// dispatch answers queries and unknown addresses at once and hands every
// other request to its service. It reports false when the calling goroutine
// is no longer the reader (handedOff).
func (c *conn) dispatch(r *wire.Request) bool {
	tab := c.s.services.Load()
	var svc *service
	var service string
	switch {
	case r.Name == "" && r.Address == 0:
		c.dropHeld()
		c.query(tab, r)
		return true
	case r.Name == "":
		svc = tab.byHandle[r.Address]
		if svc != nil {
			service = svc.handleName
		}
	case r.Name[0] == ':':
		if h, err := strconv.ParseUint(r.Name[1:], 16, 32); err == nil {
			svc = tab.byHandle[uint32(h)]
		}
		if svc != nil {
			service = svc.handleName
		}
	default:
		if tab != c.lastTab || r.Name != c.lastName {
			c.lastTab, c.lastName, c.lastSvc = tab, r.Name, tab.byName[r.Name]
		}
		svc = c.lastSvc
		if svc != nil {
			service = svc.name
		}
	}
	if c.held != svc {
		c.dropHeld()
	}
	holding := c.held != nil
	c.held = nil
	if svc == nil {
		// Checked first: a peer spamming bad names must not cost allocations.
		if log := c.s.log.V(1); log.Enabled() {
			log.Info("Message for an unknown service", "peer", c.peer, "name", r.Name, "address", r.Address,
				"session", r.Session, "push", r.Push)
		}
		c.s.metrics.reject(rejectUnknownName)
		c.reply(r.Session, false, []byte(wire.TextInvalidName))
		return true
	}
	j := svc.newJob(c, r.Payload)
	req := j.req
	req.Service = service
	req.Handle = svc.handle
	req.Session = r.Session
	req.Push = r.Push
	req.RemoteAddr = c.remote
	if r.Trace != nil {
		req.Trace = append([]byte{}, r.Trace...)
	}
	c.inflight.Add(1)
	switch svc.enqueue(j, holding) {
	case handedOff:
		return false
	case stopped:
		// Stopped while waiting for room: the message was never accepted.
		c.s.metrics.reject(rejectShuttingDown)
		push, session := req.Push, req.Session
		j.done()
		if push {
			c.s.log.Info("Dropped a push received while stopping", "service", service, "peer", c.peer)
			c.jobDone(nil)
			return true
		}
		c.jobDone(&wire.Response{Session: session,
			Payload: fmt.Appendf(nil, "skycall: node %s is shutting down", c.s.nodeName)})
	}
	return true
}

// smallPayload is the largest payload copied into the same allocation
// as its Request.
const smallPayload = 64

// smallRequest is a Request with room for a small payload: one heap
// allocation per message instead of two. The payload still belongs to the
// handler, which may keep it: the garbage collector keeps the box alive as
// long as either is referenced.
type smallRequest struct {
	req Request
	buf [smallPayload]byte
}

// fill sets the box's Request to a new one whose Payload is a copy of
// payload, which fits in buf.
func (b *smallRequest) fill(payload []byte) {
	b.req = Request{}
	n := copy(b.buf[:], payload)
	// Capacity n: a handler appending to its payload gets a new array
	// instead of writing into the rest of the box.
	if n > 0 { // an empty payload stays nil
		b.req.Payload = b.buf[:n:n]
	}
}

// newRequest returns a Request whose Payload is a copy of payload.
func newRequest(payload []byte) *Request {
	if len(payload) <= smallPayload {
		b := new(smallRequest)
		b.fill(payload)
		return &b.req
	}
	return &Request{Payload: append([]byte(nil), payload...)}
}

// query answers a request to address 0: the payload is pack(name).
func (c *conn) query(tab *serviceTable, r *wire.Request) {
	var name string
	vals, err := luaseri.Unpack(r.Payload)
	if err == nil && len(vals) > 0 {
		name, _ = vals[0].(string)
	}
	switch {
	case name == "":
		c.reply(r.Session, false, []byte(wire.TextNameNotFound))
	case name == wire.NodeQueryName:
		c.reply(r.Session, true, c.s.nodePacked)
	default:
		if svc := tab.byName["@"+name]; svc != nil {
			c.reply(r.Session, true, svc.packedHandle)
		} else {
			c.reply(r.Session, false, []byte(wire.TextNameNotFound))
		}
	}
}

// reply queues a response that no service is counting on.
func (c *conn) reply(session uint32, ok bool, payload []byte) {
	c.mu.Lock()
	c.appendLocked(&wire.Response{Session: session, OK: ok, Payload: payload})
	c.mu.Unlock()
}

// jobDone queues the reply of a message handed to a service, if any, and
// counts the message done.
func (c *conn) jobDone(resp *wire.Response) {
	if resp == nil {
		if c.inflight.Add(-1) == 0 && c.notOpen.Load() {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		return
	}
	c.mu.Lock()
	c.appendLocked(resp)
	if c.inflight.Add(-1) == 0 && c.state == connDraining {
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

// replyNow is jobDone for a reply that the calling goroutine writes itself
// when no write is in progress and nothing else is pending.
func (c *conn) replyNow(resp *wire.Response) {
	c.mu.Lock()
	if c.writing || len(c.pending) > 0 {
		c.mu.Unlock()
		c.jobDone(resp)
		return
	}
	c.inflight.Add(-1)
	if c.state == connClosed {
		c.mu.Unlock()
		return
	}
	// Not appendLocked: its broadcast would wake the writer goroutine for
	// nothing.
	c.pending = wire.AppendResponse(c.pending, resp)
	err := c.writePendingLocked()
	c.mu.Unlock()
	if err != nil {
		c.writeFailed(err)
	}
}

// writePendingLocked writes the pending replies with one Write, outside the
// lock; c.writing keeps it to one writer at a time. Called and returns with
// c.mu held.
func (c *conn) writePendingLocked() error {
	c.writing = true
	buf := c.pending
	c.pending = c.spare[:0]
	c.spare = nil
	if c.full > 0 {
		c.cond.Broadcast() // room for handlers waiting in appendLocked
	}
	c.mu.Unlock()
	_, err := c.nc.Write(buf)
	c.mu.Lock()
	c.writing = false
	if cap(buf) <= keepBuffer && c.state != connClosed {
		c.spare = buf[:0]
	}
	// Wake the writer goroutine for what came meanwhile, or to close a
	// drained connection; not for nothing, which would cost a goroutine
	// wake-up per reply written by replyNow.
	if len(c.pending) > 0 || c.state != connOpen || c.full > 0 {
		c.cond.Broadcast()
	}
	return err
}

func (c *conn) writeFailed(err error) {
	if !errors.Is(err, net.ErrClosed) {
		c.s.log.Info("Closing connection: write failed", "peer", c.peer, "err", err.Error())
	}
	c.close()
}

// appendLocked encodes resp into the pending buffer, first waiting while the
// buffer is over its limit (a peer that does not read).
func (c *conn) appendLocked(resp *wire.Response) {
	for c.state != connClosed && len(c.pending) >= pendingLimit {
		c.full++
		c.cond.Wait()
		c.full--
	}
	if c.state == connClosed {
		return
	}
	c.pending = wire.AppendResponse(c.pending, resp)
	c.cond.Broadcast()
}

// writeLoop writes whatever replies are pending in one write, then waits
// for more. It closes the connection once a drained connection is idle.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	woken := false
	c.mu.Lock()
	for {
		switch {
		case c.state == connClosed:
			c.mu.Unlock()
			return
		case c.writing:
			// A service is writing its own reply (replyNow).
			c.cond.Wait()
		case len(c.pending) > 0 && woken:
			// Woken from idle by the first reply of a burst: let the
			// handlers that are runnable now append theirs too, so that one
			// write carries many replies.
			woken = false
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		case len(c.pending) > 0:
			if err := c.writePendingLocked(); err != nil {
				c.mu.Unlock()
				c.writeFailed(err)
				return
			}
		case c.state == connDraining && c.inflight.Load() == 0:
			c.mu.Unlock()
			c.close()
			return
		default:
			c.cond.Wait()
			woken = true
		}
	}
}

// stopReading makes the reader stop at the next read, for Shutdown.
func (c *conn) stopReading() {
	c.stopRead.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.stopOnce.Do(func() { close(c.stopCh); c.s.queued.wake() })
}

// drain lets the writer close the connection once every message already
// received has been handled and its reply written.
func (c *conn) drain() {
	c.mu.Lock()
	c.setStateLocked(connDraining)
	c.mu.Unlock()
}

// close closes the connection at once, dropping pending replies.
func (c *conn) close() {
	c.mu.Lock()
	if !c.setStateLocked(connClosed) {
		c.mu.Unlock()
		return
	}
	c.pending, c.spare = nil, nil
	c.mu.Unlock()
	c.stopOnce.Do(func() { close(c.stopCh); c.s.queued.wake() })
	c.cancel()
	c.nc.Close()
	c.s.removeConn(c)
}

func (c *conn) busy() bool {
	return c.inflight.Load() > 0
}

// connReader reads from a connection for its decoder, applying the idle
// timeout and Shutdown's stop.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	idle := c.s.opts.idleTimeout
	for {
		if c.stopRead.Load() {
			return 0, errStopped
		}
		if idle > 0 {
			c.nc.SetReadDeadline(time.Now().Add(idle))
			// Shutdown may have set its own deadline just before ours.
			if c.stopRead.Load() {
				return 0, errStopped
			}
		}
		n, err := c.nc.Read(p)
		if n == 0 && err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if c.stopRead.Load() {
					return 0, errStopped
				}
				if idle > 0 {
					if c.busy() {
						// Waiting for our own handlers is not idleness.
						continue
					}
					c.idled = true
				}
			}
		}
		return n, err
	}
}
