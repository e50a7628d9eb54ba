package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skycall-io/skycall/sender/wire"
)

// serviceTable is the Server's services by name and by handle: an immutable
// snapshot, replaced as a whole by Handle so that connection readers never
// take a lock.
type serviceTable struct {
	byName   map[string]*service
	byHandle map[uint32]*service
	next     uint32
}

// service is one registered service and its queue.
type service struct {
	s            *Server
	h            Handler
	name         string
	handle       uint32
	handleName   string // ":%08x"
	packedHandle []byte // pack(handle): the answer to a query
	concurrent   bool
	reuse        bool            // WithReuseRequests: Requests up to reuseMax come from requestPool and go back once handled
	m            *serviceMetrics // nil without WithRegisterer

	queue chan job      // sequential services
	sem   chan struct{} // WithConcurrent services: one token per running handler
	start sync.Once     // starts the sequential worker on first use

	// Sequential services: turn is held by whoever runs the handler, the
	// worker or a reader running a message itself, so that it never runs
	// twice at once; pending counts the messages accepted and not yet
	// handled (queued or running), and is decremented only after turn is
	// released, so pending == 0 means turn is free and nothing waits
	// before a new message: a reader that moves pending from 0 takes turn
	// without waiting. turn is a mutex, not a channel: a channel operation
	// takes the runtime's lock, twice per message. waiting holds one
	// token per queued message until the worker has turn for it: the bound
	// of WithQueueSize, which queue alone would exceed by the message the
	// worker holds while a reader runs the handler.
	turn    sync.Mutex
	waiting chan struct{}
	pending atomic.Int64
}

type job struct {
	c   *conn
	req *Request
	box *reusedRequest // non-nil: req is in it, and it goes back to requestPool once handled
	run uint64         // non-zero: served on the connection's reader goroutine, this run of it (conn.inlineStart)
}

// reusedRequest is the box of a WithReuseRequests service's Request: a
// small one, and the room of a larger payload, up to reuseMax, kept from
// one message to the next.
type reusedRequest struct {
	smallRequest
	large []byte
}

// reuseMax is the largest payload whose room a WithReuseRequests service
// reuses; larger ones are allocated for each message.
const reuseMax = 64 << 10

// requestPool holds the boxes of WithReuseRequests services between messages.
var requestPool = sync.Pool{New: func() any { return new(reusedRequest) }}

// newJob returns a job for c whose Request has a copy of payload: reused for
// a WithReuseRequests service, new otherwise.
func (svc *service) newJob(c *conn, payload []byte) job {
	n := len(payload)
	if !svc.reuse || n > reuseMax {
		return job{c: c, req: newRequest(payload)}
	}
	b := requestPool.Get().(*reusedRequest)
	if n <= smallPayload {
		b.fill(payload)
	} else {
		if cap(b.large) < n {
			b.large = make([]byte, n)
		}
		copy(b.large[:n], payload)
		b.req = Request{Payload: b.large[:n:n]}
	}
	return job{c: c, req: &b.req, box: b}
}

// done recycles the job's Request, if it is reused: its handler has
// returned and its reply is copied.
func (j job) done() {
	if j.box != nil {
		j.box.req = Request{} // drop what the handler set, for the collector
		requestPool.Put(j.box)
	}
}

// What enqueue did with a message.
type enqueued uint8

const (
	accepted  enqueued = iota // handled, or queued for the service
	stopped                   // the connection stopped reading while waiting for room: never accepted
	handedOff                 // handled on the reader goroutine, which meanwhile handed reading to another: stop reading
)

// enqueue hands req to the service, waiting for room in its queue (the
// backpressure point), or runs it at once on the calling reader goroutine
// when a sequential service has nothing queued or running.
//
// The request's bytes count against the Server's queued budget from here
// until its handler returns: past the budget the reader waits here too, so
// that many connections cannot together queue more than the budget. A
// message of one frame run at once on the reader is not counted: it waits
// nowhere, and the reader's buffer bounds it already, so it is spared two
// atomic operations on the Server-wide count.
//
// holding says the reader kept the service's turn after its last message
// (conn.held): the message runs at once under it if nothing else came
// for the service meanwhile, else it gives turn back and waits its turn.
func (svc *service) enqueue(j job, holding bool) enqueued {
	s, c, req := svc.s, j.c, j.req
	size := int64(len(req.Payload))
	if holding {
		if size <= wire.MultiPart && svc.pending.Load() == 1 {
			return svc.runInline(j, true)
		}
		svc.endInline() // a message from another connection came first, or this one is counted
	}
	if !svc.concurrent && size <= wire.MultiPart && svc.pending.CompareAndSwap(0, 1) {
		return svc.runInline(j, false)
	}
	if svc.concurrent && size <= wire.MultiPart && c.dec.Buffered() == 0 && len(svc.sem) == 0 {
		select {
		case svc.sem <- struct{}{}:
			return svc.runConcurrentInline(j)
		default:
		}
	}
	if !s.queued.acquire(size, c.stopCh) {
		return stopped
	}
	if svc.concurrent {
		if !chanSend(svc.sem, c.stopCh) {
			s.queued.release(size)
			return stopped
		}
		// The reader calling this is itself counted in wg, so Add is safe
		// even while Close waits.
		s.wg.Add(1)
		go svc.serveConcurrent(j, size)
		return accepted
	}
	if svc.pending.CompareAndSwap(0, 1) {
		defer s.queued.release(size)
		return svc.runInline(j, false)
	}
	svc.pending.Add(1)
	svc.start.Do(func() {
		s.wg.Add(1)
		go svc.work()
	})
	if !chanSend(svc.waiting, c.stopCh) {
		svc.pending.Add(-1)
		s.queued.release(size)
		return stopped
	}
	// Room: queue has as much as waiting, so this never blocks.
	svc.queue <- j
	return accepted
}

// runInline runs j on the calling reader goroutine: the reader has moved
// the sequential service's pending count from 0. Nothing queued or running:
// the reader runs the handler itself, sparing the hand-off to the worker
// and its wake-up, which cost more than a small handler. A
// message queued after this one, from another connection, waits for turn
// like any other. A handler that runs long hands reading to a new goroutine
// (conn.inlineStart), so the connection's other messages do not wait for
// it.
//
// locked says the reader kept turn from its previous message. When the
// next message is already buffered and nothing else waits for the service,
// the reader keeps turn for it (conn.held): a burst of buffered pushes
// then costs one lock and one count, not one per message. Another
// connection's message still goes first: enqueue checks pending.
func (svc *service) runInline(j job, locked bool) enqueued {
	c := j.c
	if !locked {
		svc.turn.Lock() // free: pending was 0
	}
	j.run = c.inlineStart()
	if !svc.serve(j) {
		svc.endInline()
		return handedOff
	}
	if svc.pending.Load() == 1 && c.dec.NextBuffered() {
		c.held = svc
		return accepted
	}
	svc.endInline()
	return accepted
}

// runConcurrentInline runs j, a message of a WithConcurrent service that holds
// a running slot, on the calling reader goroutine: no other handler of the
// service was running and nothing else has arrived on the connection, so
// the reader would only wait for a read, and a goroutine per message is a
// hand-off as costly as the network on a lone call. A handler that runs
// long hands reading to a new goroutine (conn.inlineStart), as for a
// sequential service.
func (svc *service) runConcurrentInline(j job) enqueued {
	j.run = j.c.inlineStart()
	reader := svc.serve(j)
	<-svc.sem
	if !reader {
		return handedOff
	}
	return accepted
}

// endInline gives back the turn and the pending count of a message the
// reader ran itself.
func (svc *service) endInline() {
	svc.turn.Unlock()
	svc.pending.Add(-1)
}

// serveConcurrent is the goroutine of one message of a WithConcurrent service.
// A method, not a closure: capturing the job would move it to the heap on
// every path of enqueue.
func (svc *service) serveConcurrent(j job, size int64) {
	defer svc.s.wg.Done()
	defer func() { <-svc.sem }()
	defer svc.s.queued.release(size)
	svc.serve(j)
}

// chanSend sends a token on ch, waiting for room, or gives up when stop is
// closed. It tries without waiting first: that is one channel operation,
// where the select on both locks both channels, and there is nearly always
// room.
func chanSend(ch chan struct{}, stop <-chan struct{}) bool {
	select {
	case ch <- struct{}{}:
		return true
	default:
	}
	select {
	case ch <- struct{}{}:
		return true
	case <-stop:
		return false
	}
}

// work is the goroutine of a sequential service: it runs until the Server
// finishes, handling one message at a time.
func (svc *service) work() {
	defer svc.s.wg.Done()
	quit := svc.s.quit
	for {
		select {
		case <-quit:
			return
		default:
		}
		var j job
		select {
		case j = <-svc.queue: // one channel operation when busy (see chanSend)
		default:
			select {
			case <-quit:
				return
			case j = <-svc.queue:
			}
		}
		size := int64(len(j.req.Payload))
		// Waits, if a reader runs a message itself, for its handler to
		// return: Close waits for that handler too.
		svc.turn.Lock()
		select {
		case <-quit:
			svc.turn.Unlock()
			return
		default:
		}
		<-svc.waiting
		svc.serve(j)
		svc.turn.Unlock()
		svc.pending.Add(-1)
		svc.s.queued.release(size)
	}
}

// serve runs the handler for one message and queues its reply. Served on
// the reader (j.run non-zero), it ends the run as the handler returns and
// reports whether the goroutine is still the connection's reader.
func (svc *service) serve(j job) (reader bool) {
	c, req := j.c, j.req
	defer j.done()
	if !req.Push && c.ctx.Err() != nil {
		// The connection is gone: no one would read the reply.
		c.jobDone(nil)
		return j.run == 0 || c.inlineEnd(j.run)
	}
	reader = true
	var start time.Time
	if svc.m != nil {
		start = time.Now()
	}
	ctx, span := svc.s.startSpan(c.ctx, req)
	reply, err := svc.call(ctx, req)
	if j.run != 0 {
		reader = c.inlineEnd(j.run)
	}
	endSpan(span, err)
	svc.m.handled(req.Push, start, err, len(req.Payload), len(reply))
	if req.Push {
		if err != nil {
			svc.s.log.Error(err, "Push handler failed", "service", req.Service, "peer", c.peer)
		}
		c.jobDone(nil)
		return reader
	}
	resp := wire.Response{Session: req.Session}
	switch {
	case err != nil:
		resp.Payload = []byte(err.Error())
	case len(reply) > svc.s.opts.maxMessageSize:
		svc.s.log.Info("Reply too large; answering an error instead", "service", req.Service, "peer", c.peer,
			"size", len(reply), "limit", svc.s.opts.maxMessageSize)
		resp.Payload = fmt.Appendf(nil, "skycall: reply of %s is %d bytes, over the server's limit of %d bytes",
			req.Service, len(reply), svc.s.opts.maxMessageSize)
	default:
		resp.OK = true
		resp.Payload = reply
	}
	// A handler goroutine with nothing else queued writes its reply itself
	// when the connection's writer is idle: one hand-off less per call on a
	// quiet connection. Under load the writer goroutine batches as usual;
	// on the reader, load is requests already read and not yet handled.
	alone := (svc.concurrent && len(svc.sem) <= 1) || (!svc.concurrent && len(svc.queue) == 0)
	if j.run != 0 && reader {
		alone = c.dec.Buffered() == 0
	}
	if alone {
		c.replyNow(&resp)
		return reader
	}
	c.jobDone(&resp)
	return reader
}

// call runs the handler, turning a panic into a logged error.
func (svc *service) call(ctx context.Context, req *Request) (reply []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			svc.s.log.Error(fmt.Errorf("panic: %v", p), "Handler panicked", "service", req.Service,
				"peer", req.RemoteAddr.String(), "stack", string(debug.Stack()))
			reply, err = nil, fmt.Errorf("skycall: the handler of %s failed; see the log of node %s", req.Service, svc.s.nodeName)
		}
	}()
	return svc.h.ServeCluster(ctx, req)
}
