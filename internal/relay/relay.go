// Package relay stands in, on loopback, for every other node a skynet
// process talks to, and forwards what skynet sends through a skycall
// Client: skynet keeps one config for the life of its pod (each node name
// at a loopback port of the relay), and gets the Client's queueing through
// a peer's rollout, its reconnects and its bounded waits.
//
// Each node name gets its own listener on 127.0.0.1, at a port the kernel
// picks: skynet's clustersender says nothing of the node it wants once
// connected, so the address it dialled must say it. Ports on 127.0.0.1
// rather than addresses in 127.0.0.0/8 because every network namespace has
// 127.0.0.1 and nothing else is assumed; a listener costs one descriptor and
// one parked goroutine, so thousands of names stay cheap.
//
// On each connection requests are read in order and handed to the Client
// in that order (a call takes its place in the node's FIFO before the next
// request is read), so order per (connection, node) is kept; replies go
// back as they come, by session, as skynet's own receiver answers. Payloads
// and trace tags are forwarded as bytes, never decoded.
package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/wire"
)

// DefaultWait is how long a forwarded call may wait for its node to take it
// and answer before skynet's caller gets an error, and how long a push may
// wait for room in a full queue. It is longer than a pod's replacement
// usually takes (tens of seconds with image pulls) and shorter than a
// player's patience.
const DefaultWait = 60 * time.Second

// Forwarder is what the relay forwards through: a *sender.Client.
type Forwarder interface {
	Forward(ctx context.Context, node string, msg *sender.Message, done func(reply []byte, err error)) error
}

// An Option configures a Relay.
type Option func(*options)

type options struct {
	wait           time.Duration
	maxMessageSize int
	log            logr.Logger
	registerer     prometheus.Registerer
}

// WithWait bounds how long a call may wait for its node (DefaultWait).
func WithWait(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.wait = d
		}
	}
}

// WithMaxMessageSize bounds a request skynet may send through the relay
// (wire.DefaultMaxMessageSize).
func WithMaxMessageSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxMessageSize = n
		}
	}
}

// WithLogger sets where the relay logs.
func WithLogger(l logr.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the relay's metrics (skycall_relay_*) with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.registerer = r } }

// Relay listens for skynet's cluster connections, one loopback port per
// node name, and forwards them. It is safe for concurrent use.
type Relay struct {
	fwd     Forwarder
	opts    options
	log     logr.Logger
	metrics *metrics

	ctx    context.Context // cancelled by Close: ends every forwarded wait
	cancel context.CancelFunc

	mu        sync.Mutex              // after conn.mu, never before
	listeners map[string]net.Listener // node name -> its listener
	conns     map[*conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// ErrClosed is returned by Address after Close.
var ErrClosed = errors.New("skycall relay: closed")

// New returns a Relay forwarding through fwd. It listens on nothing until
// Address.
func New(fwd Forwarder, opts ...Option) *Relay {
	o := options{wait: DefaultWait, maxMessageSize: wire.DefaultMaxMessageSize, log: logr.Discard()}
	for _, opt := range opts {
		opt(&o)
	}
	r := &Relay{fwd: fwd, opts: o, log: o.log, listeners: map[string]net.Listener{}, conns: map[*conn]struct{}{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.metrics = newMetrics()
	if o.registerer != nil {
		if err := o.registerer.Register(r.metrics); err != nil {
			r.log.Error(err, "Relay metrics not registered")
		}
	}
	return r
}

// Address returns the loopback address that stands for node. The first
// call for a name starts listening there; the address then stays the
// node's for the relay's life, whatever happens to the node.
func (r *Relay) Address(node string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return "", ErrClosed
	}
	if l, ok := r.listeners[node]; ok {
		return l.Addr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("skycall relay: listening for node %q: %w", node, err)
	}
	r.listeners[node] = l
	r.wg.Add(1)
	go r.accept(l, node)
	r.log.V(1).Info("Relaying a node", "node", node, "address", l.Addr().String())
	return l.Addr().String(), nil
}

// Addresses are the relay addresses of every node given one so far.
func (r *Relay) Addresses() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.listeners))
	for node, l := range r.listeners {
		out[node] = l.Addr().String()
	}
	return out
}

// Conns is how many connections from skynet are open.
func (r *Relay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// WaitIdle returns once no connection from skynet is open and no call
// waits for a reply, or when ctx ends: what a stopping pod's agent waits
// for before it closes the relay.
func (r *Relay) WaitIdle(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for r.Conns() > 0 || r.metrics.waitingCalls() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Relay) accept(l net.Listener, node string) {
	defer r.wg.Done()
	for {
		nc, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Error(err, "Relay stopped accepting", "node", node)
			}
			return
		}
		c := newConn(r, nc, node)
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			nc.Close()
			return
		}
		r.conns[c] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go c.readLoop()
	}
}

func (r *Relay) removeConn(c *conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// Close stops listening, closes every connection and ends every wait:
// calls still waiting get no reply (their connections are gone).
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for _, l := range r.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	r.cancel()
	r.wg.Wait()
	if r.opts.registerer != nil {
		r.opts.registerer.Unregister(r.metrics)
	}
	return nil
}
