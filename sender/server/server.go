package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/sender/internal/telemetry"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/wire"
)

// ErrClosed is returned by Server.Serve after Shutdown or Close.
var ErrClosed = errors.New("skycall: server closed")

// ErrServiceExists is returned by Server.Handle for a name that is already
// registered on that Server.
var ErrServiceExists = errors.New("skycall: service name already registered")

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
// first, as in skynet. When a sequential service has nothing queued or
// running, the connection's reader runs the handler itself instead of
// waking the service's goroutine (a hand-off that costs more than a small
// handler); it goes on with the connection's next message, already
// received, under the same turn unless another connection's message came
// for the service meanwhile, which goes first. A handler still running
// after about a millisecond (at most two) hands reading to a new goroutine,
// so that connection's next messages wait that long at most, and a handler
// may wait for a later message of its own connection. A service
// registered with WithConcurrent gives up ordering: each message runs on its
// own goroutine, up to its queue size at once.
//
// # Backpressure and memory
//
// Each service queue is bounded (WithQueueSize, WithServiceQueue; by default
// DefaultServiceQueue messages). When a message arrives for a service
// whose queue is full, the reader of that connection waits for room and
// stops reading its socket, so TCP flow control slows the sender down; the
// connection's later messages for other services wait too, while other
// connections and services go on. A slow service thus holds up other
// services only through a connection that has filled its queue. Requests
// are bounded by WithMaxMessageSize, and half-received multipart requests
// per connection by WithMaxPartial; memory is bounded by these limits
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
	metrics    *metrics
	tracer     trace.Tracer // nil unless WithTracerProvider
	nodePacked []byte       // pack(nodeName[, incarnation]): the answer to a node query
	opts       options
	log        logr.Logger

	servicesMu sync.Mutex // serialises Handle; readers load services lock-free
	services   atomic.Pointer[serviceTable]

	baseCtx context.Context
	cancel  context.CancelFunc

	// partial bounds the bytes of multipart requests being reassembled by
	// every connection; queued the bytes of requests received and not yet
	// handled (limits.go).
	partial *wire.Budget
	queued  *byteBudget

	mu           sync.Mutex
	listeners    map[*net.Listener]struct{}
	conns        map[*conn]struct{}
	perPeer      map[string]int // connections open or being set up, by peer IP address
	admitting    int            // connections admitted and not yet in conns
	refused      [2]int         // refusals not logged yet: server-wide, per peer
	refusedLogAt [2]time.Time   // when a refusal of each kind was last logged
	stopping     bool           // Shutdown or Close began: no new listeners or connections
	stopCh       chan struct{}  // closed when stopping is set
	quit         chan struct{}  // closed when service goroutines must exit
	quitOnce     sync.Once

	wg sync.WaitGroup // every goroutine the Server started, Serve calls included
}

// New returns a Server for the node nodeName: the name it answers to a
// node query. Register services with Handle, then call Serve.
func New(nodeName string, opts ...Option) *Server {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	// The answer to a node query: the node name, then the incarnation if
	// there is one (older Clients read the first value only).
	answer := []any{nodeName}
	if o.incarnation != "" {
		answer = append(answer, o.incarnation)
	}
	packed, _ := luaseri.Pack(answer...) // strings always pack
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		nodeName:   nodeName,
		nodePacked: packed,
		opts:       o,
		log:        o.log,
		baseCtx:    ctx,
		cancel:     cancel,
		listeners:  make(map[*net.Listener]struct{}),
		conns:      make(map[*conn]struct{}),
		perPeer:    make(map[string]int),
		partial:    wire.NewBudget(o.partialBudget),
		queued:     newByteBudget(o.queuedBudget),
		stopCh:     make(chan struct{}),
		quit:       make(chan struct{}),
	}
	s.services.Store(&serviceTable{
		byName:   map[string]*service{},
		byHandle: map[uint32]*service{},
		next:     1,
	})
	s.metrics = newMetrics(s)
	if o.tracerProvider != nil {
		s.tracer = o.tracerProvider.Tracer(telemetry.TracerName)
	}
	s.registerMetrics()
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
	o := handleOptions{queueSize: s.opts.serviceQueue}
	for _, opt := range opts {
		opt(&o)
	}

	s.servicesMu.Lock()
	defer s.servicesMu.Unlock()
	old := s.services.Load()
	if _, dup := old.byName[name]; dup {
		return 0, fmt.Errorf("%w: %q", ErrServiceExists, name)
	}
	handle := old.next
	packedHandle, err := luaseri.Pack(int64(handle))
	if err != nil {
		return 0, fmt.Errorf("skycall: packing handle of %q: %w", name, err)
	}
	svc := &service{
		s:            s,
		h:            h,
		name:         name,
		handle:       handle,
		handleName:   fmt.Sprintf(":%08x", handle),
		packedHandle: packedHandle,
		concurrent:   o.concurrent,
		reuse:        o.reuse,
		m:            s.metrics.forService(name),
	}
	if o.concurrent {
		svc.sem = make(chan struct{}, o.queueSize)
	} else {
		svc.queue = make(chan job, o.queueSize)
		svc.waiting = make(chan struct{}, o.queueSize)
	}
	tab := &serviceTable{
		byName:   make(map[string]*service, len(old.byName)+1),
		byHandle: make(map[uint32]*service, len(old.byHandle)+1),
		next:     handle + 1,
	}
	for k, v := range old.byName {
		tab.byName[k] = v
	}
	for k, v := range old.byHandle {
		tab.byHandle[k] = v
	}
	tab.byName[name] = svc
	tab.byHandle[handle] = svc
	s.services.Store(tab)
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
// closes l and returns ErrClosed once Shutdown or Close was called, or
// the error that made Accept fail for good.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		l.Close()
		return ErrClosed
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
			if s.shuttingDown() {
				return ErrClosed
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
		s.startConn(nc)
	}
}

// Shutdown stops the Server gracefully: it closes the listeners, stops
// reading from every connection, waits until every message already received
// has been handled and every reply written, then closes the connections.
// If ctx ends first, Shutdown closes the Server as Close does and returns
// ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	conns, err := s.stopAll()
	for _, c := range conns {
		c.stopReading()
	}
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for s.connCount() > 0 {
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
			wait = min(2*wait, 50*time.Millisecond)
			t.Reset(wait)
		}
	}
	s.finish()
	return err
}

// Close closes the listeners and every connection at once, cancels the ctx
// of every handler, drops the messages still queued and waits until every
// goroutine of the Server, running handlers included, has returned.
func (s *Server) Close() error {
	conns, err := s.stopAll()
	for _, c := range conns {
		c.close()
	}
	s.finish()
	return err
}

// stopAll marks the Server stopping, closes its listeners and returns the
// connections open at that moment; no connection is added afterwards.
func (s *Server) stopAll() ([]*conn, error) {
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
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns, err
}

// finish stops the service goroutines and waits for every goroutine.
func (s *Server) finish() {
	defer s.unregisterMetrics()
	s.cancel()
	s.quitOnce.Do(func() { close(s.quit) })
	s.wg.Wait()
}

func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
