package sender

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/skycall-io/skycall/sender/wire"
)

// serviceTable is the Server's services by name and by handle: an immutable
// snapshot, replaced as a whole by Handle so that connection readers never
// take a lock.
type serviceTable struct {
	byName   map[string]*srvService
	byHandle map[uint32]*srvService
	next     uint32
}

// srvService is one registered service and its queue.
type srvService struct {
	s            *Server
	h            Handler
	name         string
	handle       uint32
	handleName   string // ":%08x"
	packedHandle []byte // pack(handle): the answer to a query
	concurrent   bool
	m            *srvServiceMetrics // nil without ServerRegisterer

	queue chan srvJob   // sequential services
	sem   chan struct{} // Concurrent services: one token per running handler
	start sync.Once     // starts the sequential worker on first use
}

type srvJob struct {
	c   *srvConn
	req *Request
}

// enqueue hands req to the service, waiting for room in its queue (the
// backpressure point). It reports false if the connection stopped reading
// while waiting.
//
// The request's bytes count against the Server's queued budget from here
// until its handler returns: past the budget the reader waits here too, so
// that many connections cannot together queue more than the budget.
func (svc *srvService) enqueue(c *srvConn, req *Request) bool {
	s := svc.s
	size := int64(len(req.Payload))
	if !s.queued.acquire(size, c.stopCh) {
		return false
	}
	if svc.concurrent {
		select {
		case svc.sem <- struct{}{}:
		case <-c.stopCh:
			s.queued.release(size)
			return false
		}
		// The reader calling this is itself counted in wg, so Add is safe
		// even while Close waits.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-svc.sem }()
			defer s.queued.release(size)
			svc.serve(srvJob{c: c, req: req})
		}()
		return true
	}
	svc.start.Do(func() {
		s.wg.Add(1)
		go svc.work()
	})
	select {
	case svc.queue <- srvJob{c: c, req: req}:
		return true
	case <-c.stopCh:
		s.queued.release(size)
		return false
	}
}

// work is the goroutine of a sequential service: it runs until the Server
// finishes, handling one message at a time.
func (svc *srvService) work() {
	defer svc.s.wg.Done()
	for {
		select {
		case <-svc.s.quit:
			return
		default:
		}
		select {
		case <-svc.s.quit:
			return
		case j := <-svc.queue:
			size := int64(len(j.req.Payload))
			svc.serve(j)
			svc.s.queued.release(size)
		}
	}
}

// serve runs the handler for one message and queues its reply.
func (svc *srvService) serve(j srvJob) {
	c, req := j.c, j.req
	if !req.Push && c.ctx.Err() != nil {
		// The connection is gone: no one would read the reply.
		c.jobDone(nil)
		return
	}
	var start time.Time
	if svc.m != nil {
		start = time.Now()
	}
	ctx, span := svc.s.startSpan(c.ctx, req)
	reply, err := svc.call(ctx, req)
	endSpan(span, err)
	svc.m.handled(req.Push, start, err, len(req.Payload), len(reply))
	if req.Push {
		if err != nil {
			svc.s.log.Error(err, "Push handler failed", "service", req.Service, "peer", c.peer)
		}
		c.jobDone(nil)
		return
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
	// quiet connection. Under load the writer goroutine batches as usual.
	if (svc.concurrent && len(svc.sem) <= 1) || (!svc.concurrent && len(svc.queue) == 0) {
		c.replyNow(&resp)
		return
	}
	c.jobDone(&resp)
}

// call runs the handler, turning a panic into a logged error.
func (svc *srvService) call(ctx context.Context, req *Request) (reply []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			svc.s.log.Error(fmt.Errorf("panic: %v", p), "Handler panicked", "service", req.Service,
				"peer", req.RemoteAddr.String(), "stack", string(debug.Stack()))
			reply, err = nil, fmt.Errorf("skycall: the handler of %s failed; see the log of node %s", req.Service, svc.s.nodeName)
		}
	}()
	return svc.h.ServeCluster(ctx, req)
}
