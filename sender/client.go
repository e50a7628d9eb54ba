package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
)

// Client sends pushes and calls to the nodes of a cluster, as skynet's
// cluster.send and cluster.call do. It keeps one connection and one FIFO
// queue per node, created on first use and dropped after the node has been
// idle for WithNodeIdleTimeout. A Client is safe for concurrent use;
// see the package documentation for its ordering and delivery guarantees.
type Client struct {
	reg     registry.Registry
	owned   io.Closer // the registry, when WithCloseRegistry
	opts    clientOptions
	log     logr.Logger
	metrics *clientMetrics
	tracer  trace.Tracer // WithTracerProvider's, else the global provider's (tracing.go)

	// nodesMu serialises making a node and forgetting one (idle.go), so
	// that a name has one live node and its metric series are deleted
	// before a new node of that name makes them again. Lookups of nodes
	// take no lock. Lock order: nodesMu before node.mu (conn.go).
	nodesMu sync.Mutex
	nodes   sync.Map // node name -> *node

	ctx    context.Context // cancelled by Close: interrupts dials
	cancel context.CancelFunc
	done   chan struct{} // closed by Close
	start  time.Time     // monotonic origin of call deadlines (see now)

	idleSweeps atomic.Uint64 // passes of forgetIdle, for tests

	mu     sync.Mutex // guards closed and wg.Add against Close; a leaf, taken under node.mu
	closed bool
	wg     sync.WaitGroup
}

// New returns a Client that finds nodes in reg. Nothing is resolved or
// connected until the first message to a node.
func New(reg registry.Registry, opts ...Option) *Client {
	o := defaultClientOptions()
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{reg: reg, opts: o, log: o.log, done: make(chan struct{}), start: time.Now()}
	if closer, ok := reg.(io.Closer); ok && o.closeRegistry {
		c.owned = closer
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.metrics = newClientMetrics(c)
	c.tracer = o.tracer()
	if o.registerer != nil {
		if err := o.registerer.Register(c.metrics); err != nil {
			c.log.Error(err, "Cannot register the sender's metrics; continuing without them")
			c.opts.registerer = nil
		}
	}
	if o.callTimeout > 0 || o.nodeIdle > 0 {
		c.wg.Add(1)
		go c.sweep()
	}
	return c
}

// Send pushes payload to the service at addr ("@name" for a name the node
// registered for the cluster, ".name" or ":0000000a" for its local names)
// on node. It returns once the message is queued for the node: it does not
// wait for the node to be ready, nor for a reply (a push gets none). ctx
// bounds only the wait for room in a full queue.
//
// Errors: ErrMessageTooLarge, ErrNodeDown, ErrUnknownNode, ErrQueueFull,
// ErrRegistry, ErrClosed, or ctx's error; in each case nothing was queued.
func (c *Client) Send(ctx context.Context, node, addr string, payload []byte) error {
	if err := checkName(node, addr); err != nil {
		return err
	}
	return c.send(ctx, c.node(node), nil, &message{name: addr, push: true}, payload)
}

// SendHandle is Send to a numeric service handle, as found by Query.
func (c *Client) SendHandle(ctx context.Context, node string, handle uint32, payload []byte) error {
	if err := checkHandle(node, handle); err != nil {
		return err
	}
	return c.send(ctx, c.node(node), nil, &message{addr: handle, push: true}, payload)
}

// Call sends payload to the service at addr on node and waits for its
// reply, within ctx (or the Client's call timeout, WithCallTimeout, when
// ctx has no deadline). Time spent queued while the node is not ready
// counts; a call that times out queued says the node's state and its last
// connection error, and wraps that error.
//
// A remote failure is a *RemoteError. If ctx ends while the request is
// still queued, it is withdrawn and certainly not sent; if it ends after the
// request was written, the late reply is discarded. ErrConnectionLost means
// the request was written and the connection broke before the reply: it may
// or may not have been processed. Other errors are those of Send.
func (c *Client) Call(ctx context.Context, node, addr string, payload []byte) ([]byte, error) {
	if err := checkName(node, addr); err != nil {
		return nil, err
	}
	return c.call(ctx, c.node(node), nil, &message{name: addr}, payload, nil)
}

// CallAppend is Call with the reply appended to dst, as append does: when
// dst has room its array is reused, so a caller that keeps a buffer (one
// per goroutine) spares the allocation of every reply, the one allocation a
// Call makes in steady state. Nothing else may use dst until CallAppend
// returns. On error dst is returned as it was.
func (c *Client) CallAppend(ctx context.Context, node, addr string, payload, dst []byte) ([]byte, error) {
	if err := checkName(node, addr); err != nil {
		return dst, err
	}
	reply, err := c.call(ctx, c.node(node), nil, &message{name: addr}, payload, dst)
	if err != nil {
		return dst, err
	}
	return reply, nil
}

// CallHandle is Call to a numeric service handle, as found by Query.
func (c *Client) CallHandle(ctx context.Context, node string, handle uint32, payload []byte) ([]byte, error) {
	if err := checkHandle(node, handle); err != nil {
		return nil, err
	}
	return c.call(ctx, c.node(node), nil, &message{addr: handle}, payload, nil)
}

// Query asks node for the numeric handle of a service name (skynet's
// address-0 query). A name the node does not know is a *RemoteError with
// Message "name not found".
func (c *Client) Query(ctx context.Context, node, name string) (uint32, error) {
	if err := checkName(node, name); err != nil {
		return 0, err
	}
	payload, err := luaseri.Pack(name)
	if err != nil {
		return 0, err
	}
	reply, err := c.call(ctx, c.node(node), nil, &message{}, payload, nil)
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) {
			re.Address = name
		}
		return 0, err
	}
	vals, err := luaseri.Unpack(reply)
	if err != nil {
		return 0, fmt.Errorf("skycall: node %q answered the query for %q with an unreadable payload: %w", node, name, err)
	}
	if len(vals) > 0 {
		if h, ok := vals[0].(int64); ok && h > 0 && h <= 0xFFFFFFFF {
			return uint32(h), nil
		}
	}
	return 0, fmt.Errorf("skycall: node %q answered the query for %q with %v, want one handle", node, name, vals)
}

// Service binds a node and a service address, for repeated use without
// looking the node up by name each time.
func (c *Client) Service(node, addr string) *Service {
	s := &Service{c: c, name: addr, err: checkName(node, addr)}
	s.n.Store(c.node(node))
	return s
}

// ServiceHandle binds a node and a numeric service handle.
func (c *Client) ServiceHandle(node string, handle uint32) *Service {
	s := &Service{c: c, addr: handle, err: checkHandle(node, handle)}
	s.n.Store(c.node(node))
	return s
}

// Logger is the Client's logger (WithLogger), for what works beside it.
func (c *Client) Logger() logr.Logger { return c.log }

// State returns the connection state of node (StateIdle for a node never
// used, or forgotten after WithNodeIdleTimeout).
func (c *Client) State(nodeName string) State {
	v, ok := c.nodes.Load(nodeName)
	if !ok {
		return StateIdle
	}
	n := v.(*node)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// Close closes every connection and stops every goroutine of the Client.
// Calls waiting for a reply or queued fail with ErrClosed; queued Sends are
// dropped, counted (skycall_sender_dropped_total{reason="closed"}) and
// logged. Later Sends and Calls fail with ErrClosed. It returns once all
// the Client's goroutines have ended.
//
// Sends already written are proven received before their connection
// closes: a connection with pushes no reply has proven writes a probe and
// Close waits for its reply, a round trip to a healthy peer, so that a
// clean shutdown counts none unconfirmed. The wait is bounded by
// WithPeerTimeout, the time after which a silent peer is taken for dead
// anyway, and runs for every node at once: Close takes at most that long
// more, and only when a peer does not answer; the pushes then count as
// unconfirmed.
func (c *Client) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	if !already {
		c.cancel()
		close(c.done)
	}
	c.wg.Wait()
	if already {
		return nil
	}
	if c.opts.registerer != nil {
		c.opts.registerer.Unregister(c.metrics)
	}
	if c.owned != nil {
		return c.owned.Close()
	}
	return nil
}

// Service is a node and a service address bound together; see
// Client.Service.
type Service struct {
	c    *Client
	n    atomic.Pointer[node] // replaced when the node was forgotten while idle
	addr uint32
	name string
	err  error
}

// Node returns the node name.
func (s *Service) Node() string { return s.n.Load().name }

// Address returns the service address ("@name", or ":0000000a" for a handle).
func (s *Service) Address() string {
	if s.name != "" {
		return s.name
	}
	return handleAddress(s.addr)
}

// Send is Client.Send to the bound service.
func (s *Service) Send(ctx context.Context, payload []byte) error {
	if s.err != nil {
		return s.err
	}
	return s.c.send(ctx, s.n.Load(), s, &message{addr: s.addr, name: s.name, push: true}, payload)
}

// Call is Client.Call to the bound service.
func (s *Service) Call(ctx context.Context, payload []byte) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.c.call(ctx, s.n.Load(), s, &message{addr: s.addr, name: s.name}, payload, nil)
}

// CallAppend is Client.CallAppend to the bound service.
func (s *Service) CallAppend(ctx context.Context, payload, dst []byte) ([]byte, error) {
	if s.err != nil {
		return dst, s.err
	}
	reply, err := s.c.call(ctx, s.n.Load(), s, &message{addr: s.addr, name: s.name}, payload, dst)
	if err != nil {
		return dst, err
	}
	return reply, nil
}

func checkName(node, name string) error {
	if node == "" {
		return errors.New("skycall: empty node name")
	}
	if len(name) == 0 || len(name) > 255 {
		return fmt.Errorf("skycall: service address %q for node %q must be 1..255 bytes", name, node)
	}
	return nil
}

func checkHandle(node string, handle uint32) error {
	if node == "" {
		return errors.New("skycall: empty node name")
	}
	if handle == 0 {
		return fmt.Errorf("skycall: handle 0 on node %q is the query address; use Query", node)
	}
	return nil
}

// node returns the node named name, creating it (idle) on first use or
// after the previous one was forgotten.
func (c *Client) node(name string) *node {
	if v, ok := c.nodes.Load(name); ok {
		return v.(*node)
	}
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	if v, ok := c.nodes.Load(name); ok {
		return v.(*node)
	}
	n := newNode(c, name)
	c.nodes.Store(name, n)
	return n
}

// resubmit hands m, which n refused because it was forgotten while idle,
// to the node that replaced it, which a Service (svc non-nil) then keeps.
// It returns the node that took m. It is off the hot path: send and call
// try n.submit first.
func (c *Client) resubmit(ctx context.Context, n *node, svc *Service, m *message, b body) (*node, error) {
	err := errForgotten
	for err == errForgotten {
		// forget removes n from nodes under nodesMu, which node takes when
		// it misses: this waits for forget to finish and never spins.
		old := n
		n = c.node(n.name)
		if svc != nil {
			svc.n.CompareAndSwap(old, n)
		}
		err = n.submit(ctx, m, b)
	}
	return n, err
}

func (c *Client) send(ctx context.Context, n *node, svc *Service, m *message, payload []byte) error {
	if trace.SpanContextFromContext(ctx).IsValid() { // the one cost of tracing when off
		return c.tracedSend(ctx, n, svc, m, payload)
	}
	return c.sendTagged(ctx, n, svc, m, body{payload: payload})
}

// sendTagged is send once b carries the trace tag, if any.
func (c *Client) sendTagged(ctx context.Context, n *node, svc *Service, m *message, b body) error {
	if len(b.payload) > c.opts.maxMessageSize {
		return n.tooLarge(len(b.payload))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := n.submit(ctx, m, b)
	if err == errForgotten {
		_, err = c.resubmit(ctx, n, svc, m, b)
	}
	return err
}

// call makes a Call of m with payload; with dst non-nil (CallAppend) the
// reply is appended to dst.
func (c *Client) call(ctx context.Context, n *node, svc *Service, m *message, payload, dst []byte) ([]byte, error) {
	if trace.SpanContextFromContext(ctx).IsValid() { // the one cost of tracing when off
		return c.tracedCall(ctx, n, svc, m, payload, dst)
	}
	return c.callTagged(ctx, n, svc, m, body{payload: payload}, dst)
}

// callTagged is call once b carries the trace tag, if any.
func (c *Client) callTagged(ctx context.Context, n *node, svc *Service, m *message, b body, dst []byte) ([]byte, error) {
	start := time.Now()
	n, w, err := c.submitCall(ctx, n, svc, m, b, dst, start)
	if err != nil {
		return nil, err
	}
	return c.awaitCall(ctx, n, m, w, start)
}

// submitCall gives m a waiter and submits it: once it returns, the call has
// its place in the node's order. It returns the node that took it.
func (c *Client) submitCall(ctx context.Context, n *node, svc *Service, m *message, b body, dst []byte, start time.Time) (*node, *call, error) {
	if len(b.payload) > c.opts.maxMessageSize {
		n.countCall(resultTooLarge)
		n.callDone(start, resultTooLarge)
		return n, nil, n.tooLarge(len(b.payload))
	}
	if err := ctx.Err(); err != nil {
		return n, nil, err
	}
	w := getCall()
	w.addr, w.name, w.dst = m.addr, m.name, dst
	if c.opts.callTimeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			// From the clock, not from a count of sweeps: on a loaded
			// machine sweeps come late, and a count would lag the clock and
			// time calls out early.
			w.deadline = c.now() + uint64(c.opts.callTimeout)
		}
	}
	m.call = w
	err := n.submit(ctx, m, b)
	if err == errForgotten {
		n, err = c.resubmit(ctx, n, svc, m, b)
	}
	if err != nil {
		putCall(w)
		n.callDone(start, n.countCallErr(err))
		return n, nil, err
	}
	return n, w, nil
}

// awaitCall waits for the reply to a submitted call, within ctx.
func (c *Client) awaitCall(ctx context.Context, n *node, m *message, w *call, start time.Time) ([]byte, error) {
	// A lone call's caller reads its own reply (reader.go); others,
	// and one whose read ended first, wait for the delivery.
	if wc := w.conn; wc == nil || !wc.tryRead() || !wc.readFor(ctx, w) {
		select {
		case <-w.done:
		case <-ctx.Done():
			if owned, written := n.withdraw(w); owned {
				putCall(w)
				err := n.ctxError(ctx.Err(), m.addr, m.name, written)
				n.callDone(start, n.countCallErr(err))
				return nil, err
			}
			<-w.done // a reply or failure is being delivered: take it
		}
	}
	reply, err := w.reply, w.err
	putCall(w)
	if err != nil {
		n.callDone(start, n.countCallErr(err))
		return nil, err
	}
	n.m.callsOK.Inc()
	n.callDone(start, resultOK)
	return reply, nil
}

// callDone records how long a finished call took, by result: a cached
// child for an ok call (no allocation), a label lookup for the rarer
// failures.
func (n *node) callDone(start time.Time, result string) {
	if result == resultOK {
		n.m.callTimeOK.Observe(time.Since(start).Seconds())
		return
	}
	n.c.metrics.callTime.WithLabelValues(n.name, result).Observe(time.Since(start).Seconds())
}

// now is the time since the Client started, in nanoseconds, on the
// monotonic clock; never 0, which means "no deadline".
func (c *Client) now() uint64 { return uint64(time.Since(c.start)) + 1 }

// sweepTicks is how many sweeps make one default call timeout.
const sweepTicks = 10

// sweep is the Client's one background goroutine: it enforces the default
// call timeout on calls whose ctx has no deadline (one pass over the waiting
// calls every tenth of the timeout, instead of a timer per call) and
// forgets idle nodes (idle.go).
func (c *Client) sweep() {
	defer c.wg.Done()
	var expiry, idle <-chan time.Time
	if c.opts.callTimeout > 0 {
		t := time.NewTicker(max(c.opts.callTimeout/sweepTicks, time.Millisecond))
		defer t.Stop()
		expiry = t.C
	}
	if c.opts.nodeIdle > 0 {
		t := time.NewTicker(max(c.opts.nodeIdle/idleTicks, time.Millisecond))
		defer t.Stop()
		idle = t.C
	}
	for {
		select {
		case <-c.done:
			return
		case <-expiry:
			now := c.now()
			c.nodes.Range(func(_, v any) bool {
				v.(*node).expire(now)
				return true
			})
		case now := <-idle:
			c.forgetIdle(now)
		}
	}
}
