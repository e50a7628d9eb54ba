package sender

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/wire"
)

// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
var ErrServerClosed = errors.New("skycall: server closed")

// ErrServiceExists is returned by Server.Handle for a name that is already
// registered on that Server.
var ErrServiceExists = errors.New("skycall: service name already registered")

// Error texts a skynet sender knows from its own receiver; they are sent
// as-is so that both kinds of peer see the same replies.
const (
	srvErrInvalidName     = "Invalid name"
	srvErrNameNotFound    = "name not found"
	srvErrInvalidLargeReq = "Invalid large req"
)

// A Handler serves the messages sent to one service of a Server.
//
// ServeCluster returns the reply of a call: a payload, usually skynet.pack'ed
// (see package luaseri), or an error whose text (err.Error()) reaches the
// caller. For a push (req.Push) the reply is discarded and an error is only
// logged. ctx is cancelled when the connection that carried the message
// closes, and when the Server is closed; a handler should return then.
// A panic is recovered, logged and answered with an error.
type Handler interface {
	ServeCluster(ctx context.Context, req *Request) ([]byte, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, req *Request) ([]byte, error)

// ServeCluster calls f(ctx, req).
func (f HandlerFunc) ServeCluster(ctx context.Context, req *Request) ([]byte, error) {
	return f(ctx, req)
}

// A Request is one message received by a Server.
type Request struct {
	// Service is the service as the sender addressed it: its registered
	// name ("@store", ".svc"), or ":%08x" of its handle when it was addressed
	// by number (numerically or by a ":0000000a" string).
	Service string
	// Handle is the numeric handle of the service (see Server.Handle).
	Handle uint32
	// Session is the sender's session. A single-frame push carries 0.
	Session uint32
	// Push is true for a cluster.send, false for a cluster.call.
	Push bool
	// Payload is the message as sent; it belongs to the handler.
	Payload []byte
	// Trace is the trace tag that preceded the message, or nil.
	Trace []byte
	// RemoteAddr is the address of the peer that sent the message.
	RemoteAddr net.Addr
}

// Server is the receiving side of skynet's cluster protocol: what
// cluster.open and clusteragent are to a skynet node. Senders, skynet nodes or
// skycall Clients, connect to it and address its services by name or handle.
//
// # Addressing
//
// Services are registered with Handle. A name starting with '@' is a cluster
// name (skynet's cluster.register): senders address it as "@name", and a
// query (numeric address 0) whose payload is skynet.pack("name"), without
// the '@' as in skynet's cluster.query, is answered with pack(handle) or the
// error "name not found". Other names (".svc") are local names, addressable
// by their exact string but not queryable, as in skynet. Every service also
// gets a handle, from 1 upward, usable as a numeric address or as the string
// ":%08x". The query skynet.pack(wire.NodeQueryName) is answered with
// pack(node name). A message to an unknown name or handle gets the error
// reply "Invalid name", even a push (with session 0), like skynet's receiver.
//
// # Ordering
//
// A service handles its messages one at a time, in the order the Server
// received them, across all connections: one queue and one goroutine per
// service, like a skynet service's message queue. Messages sent on one
// connection to one service are therefore handled in the order they were
// completed on the wire; a multipart message counts when its last part
// arrives, so a small message written after a large one may be handled
// first, as in skynet. A service registered with Concurrent gives up
// ordering: each message runs on its own goroutine, up to its queue size at
// once.
//
// # Backpressure and memory
//
// Each service queue is bounded (QueueSize, ServerServiceQueue; by default
// DefaultServerServiceQueue messages). When a message arrives for a service
// whose queue is full, the reader of that connection waits for room and
// stops reading its socket, so TCP flow control slows the sender down; the
// connection's later messages for other services wait too, while other
// connections and services go on. A slow service thus holds up other
// services only through a connection that has filled its queue. Requests
// are bounded by ServerMaxMessageSize, and half-received multipart requests
// per connection by ServerMaxPartial; memory is bounded by these limits
// times the queue sizes, so lower them for services that take large
// messages. Replies wait in a per-connection buffer written by one
// goroutine that batches them into one write, in completion order; when a
// peer stops reading and that buffer passes a few MiB, handlers that reply
// to it wait, which in turn fills their service queue.
//
// # What is lost when
//
// When a connection closes (peer gone, fatal framing error, idle timeout),
// handlers of its calls see their ctx cancelled and their replies are
// dropped, its calls not yet started are dropped, and its pushes already
// received are still handled. Shutdown stops reading new messages, handles
// everything already received, writes the replies and only then closes the
// connections. Close cancels every handler's ctx, closes every connection,
// drops the messages still queued and returns once every goroutine of the
// Server, running handlers included, has returned.
type Server struct {
	nodeName   string
	nodePacked []byte // pack(nodeName): the answer to a node query
	opts       srvOptions
	log        logr.Logger

	regMu    sync.Mutex // serialises Handle; readers load registry lock-free
	registry atomic.Pointer[srvRegistry]

	baseCtx context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*srvConn]struct{}
	stopping  bool          // Shutdown or Close began: no new listeners or connections
	stopCh    chan struct{} // closed when stopping is set
	quit      chan struct{} // closed when service goroutines must exit
	quitOnce  sync.Once

	wg sync.WaitGroup // every goroutine the Server started, Serve calls included
}

// srvRegistry is an immutable snapshot of the registered services, replaced
// as a whole by Handle so that connection readers never take a lock.
type srvRegistry struct {
	byName   map[string]*srvService
	byHandle map[uint32]*srvService
	next     uint32
}

// NewServer returns a Server for the node nodeName: the name it answers to a
// node query. Register services with Handle, then call Serve.
func NewServer(nodeName string, opts ...ServerOption) *Server {
	o := srvDefaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	packed, _ := luaseri.Pack(nodeName) // a string always packs
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		nodeName:   nodeName,
		nodePacked: packed,
		opts:       o,
		log:        o.log,
		baseCtx:    ctx,
		cancel:     cancel,
		listeners:  make(map[*net.Listener]struct{}),
		conns:      make(map[*srvConn]struct{}),
		stopCh:     make(chan struct{}),
		quit:       make(chan struct{}),
	}
	s.registry.Store(&srvRegistry{
		byName:   map[string]*srvService{},
		byHandle: map[uint32]*srvService{},
		next:     1,
	})
	return s
}

// Handle registers h under name and returns the service's numeric handle.
// A name starting with '@' is a cluster name ("@store": queryable as
// "store"); any other is a local name (".store"). Names are at most 255
// bytes, must not start with ':' (the form of numeric handles) and must be
// unique within the Server (ErrServiceExists). Handle may be called while
// the Server is serving.
func (s *Server) Handle(name string, h Handler, opts ...HandleOption) (uint32, error) {
	switch {
	case name == "" || name == "@":
		return 0, fmt.Errorf("skycall: invalid service name %q: it must not be empty", name)
	case len(name) > 255:
		return 0, fmt.Errorf("skycall: invalid service name %.20q...: the wire carries at most 255 bytes of name", name)
	case name[0] == ':':
		return 0, fmt.Errorf("skycall: invalid service name %q: names starting with ':' address handles", name)
	case name == "@"+wire.NodeQueryName:
		return 0, fmt.Errorf("skycall: invalid service name %q: it is reserved for node queries", name)
	case h == nil:
		return 0, fmt.Errorf("skycall: nil handler for service %q", name)
	}
	o := srvHandleOptions{queueSize: s.opts.serviceQueue}
	for _, opt := range opts {
		opt(&o)
	}

	s.regMu.Lock()
	defer s.regMu.Unlock()
	old := s.registry.Load()
	if _, dup := old.byName[name]; dup {
		return 0, fmt.Errorf("%w: %q", ErrServiceExists, name)
	}
	handle := old.next
	packedHandle, err := luaseri.Pack(int64(handle))
	if err != nil {
		return 0, fmt.Errorf("skycall: packing handle of %q: %w", name, err)
	}
	svc := &srvService{
		s:            s,
		h:            h,
		name:         name,
		handle:       handle,
		handleName:   fmt.Sprintf(":%08x", handle),
		packedHandle: packedHandle,
		concurrent:   o.concurrent,
	}
	if o.concurrent {
		svc.sem = make(chan struct{}, o.queueSize)
	} else {
		svc.queue = make(chan srvJob, o.queueSize)
	}
	reg := &srvRegistry{
		byName:   make(map[string]*srvService, len(old.byName)+1),
		byHandle: make(map[uint32]*srvService, len(old.byHandle)+1),
		next:     handle + 1,
	}
	for k, v := range old.byName {
		reg.byName[k] = v
	}
	for k, v := range old.byHandle {
		reg.byHandle[k] = v
	}
	reg.byName[name] = svc
	reg.byHandle[handle] = svc
	s.registry.Store(reg)
	return handle, nil
}

// HandleFunc registers f under name; see Handle.
func (s *Server) HandleFunc(name string, f func(ctx context.Context, req *Request) ([]byte, error), opts ...HandleOption) (uint32, error) {
	if f == nil {
		return 0, fmt.Errorf("skycall: nil handler for service %q", name)
	}
	return s.Handle(name, HandlerFunc(f), opts...)
}

// Serve accepts connections on l and serves each on its own goroutines. It
// closes l and returns ErrServerClosed once Shutdown or Close was called, or
// the error that made Accept fail for good.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	ln := &l
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		l.Close()
		s.wg.Done()
	}()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.srvStopping() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// Out of file descriptors and the like: wait and retry, as
				// net/http does, rather than give up serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Error(err, "Accept failed; retrying", "listener", l.Addr().String(), "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.stopCh:
					t.Stop()
				}
				continue
			}
			return err
		}
		delay = 0
		s.srvStartConn(nc)
	}
}

// Shutdown stops the Server gracefully: it closes the listeners, stops
// reading from every connection, waits until every message already received
// has been handled and every reply written, then closes the connections.
// If ctx ends first, Shutdown closes the Server as Close does and returns
// ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	conns, err := s.srvStop()
	for _, c := range conns {
		c.stopReading()
	}
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for s.srvConnCount() > 0 {
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
			wait = min(2*wait, 50*time.Millisecond)
			t.Reset(wait)
		}
	}
	s.srvFinish()
	return err
}

// Close closes the listeners and every connection at once, cancels the ctx
// of every handler, drops the messages still queued and waits until every
// goroutine of the Server, running handlers included, has returned.
func (s *Server) Close() error {
	conns, err := s.srvStop()
	for _, c := range conns {
		c.close()
	}
	s.srvFinish()
	return err
}

// srvStop marks the Server stopping, closes its listeners and returns the
// connections open at that moment; no connection is added afterwards.
func (s *Server) srvStop() ([]*srvConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopping {
		s.stopping = true
		close(s.stopCh)
	}
	var err error
	for ln := range s.listeners {
		if cerr := (*ln).Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	conns := make([]*srvConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns, err
}

// srvFinish stops the service goroutines and waits for every goroutine.
func (s *Server) srvFinish() {
	s.cancel()
	s.quitOnce.Do(func() { close(s.quit) })
	s.wg.Wait()
}

func (s *Server) srvStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *Server) srvConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) srvStartConn(nc net.Conn) {
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
	if s.opts.tls != nil {
		nc = tls.Server(nc, s.opts.tls)
	}
	ctx, cancel := context.WithCancel(s.baseCtx)
	c := &srvConn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr(),
		ctx:    ctx,
		cancel: cancel,
		stopCh: make(chan struct{}),
	}
	c.peer = c.remote.String()
	c.cond.L = &c.mu

	s.mu.Lock()
	if s.stopping {
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

func (s *Server) srvRemoveConn(c *srvConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
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
func (svc *srvService) enqueue(c *srvConn, req *Request) bool {
	s := svc.s
	if svc.concurrent {
		select {
		case svc.sem <- struct{}{}:
		case <-c.stopCh:
			return false
		}
		// The reader calling this is itself counted in wg, so Add is safe
		// even while Close waits.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-svc.sem }()
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
			svc.serve(j)
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
	reply, err := svc.call(c.ctx, req)
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

// srvPendingLimit is the size of queued replies beyond which handlers
// replying on a connection wait for its writer. One reply of any size is
// always accepted into an emptier buffer.
const srvPendingLimit = 4 << 20

// srvKeepBuffer is the largest write buffer kept for reuse after a write.
const srvKeepBuffer = 256 << 10

// errSrvStopped is what the reader sees once Shutdown stopped reading.
var errSrvStopped = errors.New("skycall: server stopped reading")

// srvConn is one accepted connection: a reader goroutine that decodes
// requests and dispatches them, and a writer goroutine that writes replies.
type srvConn struct {
	s      *Server
	nc     net.Conn
	remote net.Addr
	peer   string
	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	stopRead atomic.Bool   // Shutdown: read no further request
	stopCh   chan struct{} // closed by stopReading and close: stop waiting for queues
	stopOnce sync.Once
	idled    bool // reader only: the idle timeout fired

	mu       sync.Mutex
	cond     sync.Cond // on mu: pending, inflight, draining or closed changed
	pending  []byte    // encoded replies waiting for the writer
	spare    []byte    // the writer's previous buffer, reused
	writing  bool      // a Write is in progress (writer goroutine or replyNow)
	inflight int       // messages handed to services and not yet done
	draining bool      // reader stopped by Shutdown: close once idle
	closed   bool
}

func (c *srvConn) readLoop() {
	defer c.s.wg.Done()
	// The decoder copies frames into its own buffer; reads of large frames
	// bypass this one.
	br := bufio.NewReaderSize(srvReader{c}, 16<<10)
	dec := wire.NewRequestDecoder(br, wire.Limits{
		MaxMessageSize: c.s.opts.maxMessageSize,
		MaxPartial:     c.s.opts.maxPartial,
	})
	for {
		r, err := dec.Next()
		if err != nil {
			if c.readFailed(err) {
				continue
			}
			break
		}
		c.dispatch(r)
	}
	if c.stopRead.Load() {
		c.drain()
	} else {
		c.close()
	}
}

// readFailed logs a decode or read error and reports whether the stream is
// still usable.
func (c *srvConn) readFailed(err error) bool {
	log := c.s.log
	var de *wire.DecodeError
	if errors.As(err, &de) {
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
			case errors.Is(de.Err, wire.ErrBadReassembly):
				text = []byte(srvErrInvalidLargeReq)
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
// other request to its service.
func (c *srvConn) dispatch(r *wire.Request) {
	reg := c.s.registry.Load()
	var svc *srvService
	var service string
	switch {
	case r.Name == "" && r.Address == 0:
		c.query(reg, r)
		return
	case r.Name == "":
		svc = reg.byHandle[r.Address]
		if svc != nil {
			service = svc.handleName
		}
	case r.Name[0] == ':':
		if h, err := strconv.ParseUint(r.Name[1:], 16, 32); err == nil {
			svc = reg.byHandle[uint32(h)]
		}
		if svc != nil {
			service = svc.handleName
		}
	default:
		svc = reg.byName[r.Name]
		if svc != nil {
			service = svc.name
		}
	}
	if svc == nil {
		// Checked first: a peer spamming bad names must not cost allocations.
		if log := c.s.log.V(1); log.Enabled() {
			log.Info("Message for an unknown service", "peer", c.peer, "name", r.Name, "address", r.Address,
				"session", r.Session, "push", r.Push)
		}
		c.reply(r.Session, false, []byte(srvErrInvalidName))
		return
	}
	req := &Request{
		Service:    service,
		Handle:     svc.handle,
		Session:    r.Session,
		Push:       r.Push,
		Payload:    append([]byte(nil), r.Payload...),
		RemoteAddr: c.remote,
	}
	if r.Trace != nil {
		req.Trace = append([]byte{}, r.Trace...)
	}
	c.mu.Lock()
	c.inflight++
	c.mu.Unlock()
	if !svc.enqueue(c, req) {
		// Stopped while waiting for room: the message was never accepted.
		if req.Push {
			c.s.log.Info("Dropped a push received while stopping", "service", service, "peer", c.peer)
			c.jobDone(nil)
			return
		}
		c.jobDone(&wire.Response{Session: req.Session,
			Payload: fmt.Appendf(nil, "skycall: node %s is shutting down", c.s.nodeName)})
	}
}

// query answers a request to address 0: the payload is pack(name).
func (c *srvConn) query(reg *srvRegistry, r *wire.Request) {
	var name string
	vals, err := luaseri.Unpack(r.Payload)
	if err == nil && len(vals) > 0 {
		name, _ = vals[0].(string)
	}
	switch {
	case name == "":
		c.reply(r.Session, false, []byte(srvErrNameNotFound))
	case name == wire.NodeQueryName:
		c.reply(r.Session, true, c.s.nodePacked)
	default:
		if svc := reg.byName["@"+name]; svc != nil {
			c.reply(r.Session, true, svc.packedHandle)
		} else {
			c.reply(r.Session, false, []byte(srvErrNameNotFound))
		}
	}
}

// reply queues a response that no service is counting on.
func (c *srvConn) reply(session uint32, ok bool, payload []byte) {
	c.mu.Lock()
	c.appendLocked(&wire.Response{Session: session, OK: ok, Payload: payload})
	c.mu.Unlock()
}

// jobDone queues the reply of a message handed to a service, if any, and
// counts the message done.
func (c *srvConn) jobDone(resp *wire.Response) {
	c.mu.Lock()
	if resp != nil {
		c.appendLocked(resp)
	}
	c.inflight--
	if c.inflight == 0 && c.draining {
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

// replyNow is jobDone for a reply that the calling goroutine writes itself
// when no write is in progress and nothing else is pending.
func (c *srvConn) replyNow(resp *wire.Response) {
	c.mu.Lock()
	if c.writing || len(c.pending) > 0 {
		c.mu.Unlock()
		c.jobDone(resp)
		return
	}
	c.inflight--
	if c.closed {
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
func (c *srvConn) writePendingLocked() error {
	c.writing = true
	buf := c.pending
	c.pending = c.spare[:0]
	c.spare = nil
	c.cond.Broadcast() // room for handlers waiting in appendLocked
	c.mu.Unlock()
	_, err := c.nc.Write(buf)
	c.mu.Lock()
	c.writing = false
	if cap(buf) <= srvKeepBuffer && !c.closed {
		c.spare = buf[:0]
	}
	// Wake the writer goroutine for what came meanwhile, or to close a
	// drained connection.
	c.cond.Broadcast()
	return err
}

func (c *srvConn) writeFailed(err error) {
	if !errors.Is(err, net.ErrClosed) {
		c.s.log.Info("Closing connection: write failed", "peer", c.peer, "err", err.Error())
	}
	c.close()
}

// appendLocked encodes resp into the pending buffer, first waiting while the
// buffer is over its limit (a peer that does not read).
func (c *srvConn) appendLocked(resp *wire.Response) {
	for !c.closed && len(c.pending) >= srvPendingLimit {
		c.cond.Wait()
	}
	if c.closed {
		return
	}
	c.pending = wire.AppendResponse(c.pending, resp)
	c.cond.Broadcast()
}

// writeLoop writes whatever replies are pending in one write, then waits
// for more. It closes the connection once a drained connection is idle.
func (c *srvConn) writeLoop() {
	defer c.s.wg.Done()
	woken := false
	c.mu.Lock()
	for {
		switch {
		case c.closed:
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
		case c.draining && c.inflight == 0:
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
func (c *srvConn) stopReading() {
	c.stopRead.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.stopOnce.Do(func() { close(c.stopCh) })
}

// drain lets the writer close the connection once every message already
// received has been handled and its reply written.
func (c *srvConn) drain() {
	c.mu.Lock()
	c.draining = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

// close closes the connection at once, dropping pending replies.
func (c *srvConn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.pending, c.spare = nil, nil
	c.cond.Broadcast()
	c.mu.Unlock()
	c.stopOnce.Do(func() { close(c.stopCh) })
	c.cancel()
	c.nc.Close()
	c.s.srvRemoveConn(c)
	c.s.log.V(1).Info("Closed connection", "peer", c.peer)
}

func (c *srvConn) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight > 0
}

// srvReader reads from a connection for its decoder, applying the idle
// timeout and Shutdown's stop.
type srvReader struct{ c *srvConn }

func (r srvReader) Read(p []byte) (int, error) {
	c := r.c
	idle := c.s.opts.idleTimeout
	for {
		if c.stopRead.Load() {
			return 0, errSrvStopped
		}
		if idle > 0 {
			c.nc.SetReadDeadline(time.Now().Add(idle))
			// Shutdown may have set its own deadline just before ours.
			if c.stopRead.Load() {
				return 0, errSrvStopped
			}
		}
		n, err := c.nc.Read(p)
		if n == 0 && err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if c.stopRead.Load() {
					return 0, errSrvStopped
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
