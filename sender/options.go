package sender

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/sender/tlsfiles"
	"github.com/skycall-io/skycall/sender/wire"
)

// Defaults of a Client's options.
const (
	// DefaultQueueLimit is how many messages may wait for one node (queued
	// while it is not ready, or waiting for the connection's writer).
	DefaultQueueLimit = 65536
	// DefaultQueueBytes is how many payload bytes may wait for one node.
	DefaultQueueBytes = 64 << 20
	// DefaultCallTimeout bounds a Call whose ctx has no deadline.
	DefaultCallTimeout = 30 * time.Second
	// DefaultConnectTimeout bounds one attempt to dial and confirm a node.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultBackoffBase and DefaultBackoffMax shape the delay between
	// connection attempts: base × 1.6^(n-1), capped at max, ±20% jitter.
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffMax  = 10 * time.Second
	// DefaultNodeIdleTimeout is how long a node may go unused (nothing
	// queued, nothing in flight, no message) before the Client forgets it.
	DefaultNodeIdleTimeout = 5 * time.Minute
	// DefaultPeerTimeout is how long a connected peer may stay silent, or
	// take none of the bytes written to it, before it is probed and then
	// given up (see WithPeerTimeout).
	DefaultPeerTimeout = 10 * time.Second
)

// An Option configures a Client; pass them to New or kube.NewClient.
type Option func(*clientOptions)

type clientOptions struct {
	log            logr.Logger
	closeRegistry  bool
	registerer     prometheus.Registerer
	noNodeLabel    bool                 // WithMetricsNodeLabel(false)
	tracerProvider trace.TracerProvider // WithTracerProvider; nil: the global one
	queueLimit     int
	queueBytes     int
	failWhenFull   bool
	callTimeout    time.Duration
	callTimeoutSet bool // by WithCallTimeout, for error messages
	connectTimeout time.Duration
	backoffBase    time.Duration
	backoffMax     time.Duration
	nodeIdle       time.Duration
	peerTimeout    time.Duration
	maxMessageSize int
	dial           func(ctx context.Context, network, address string) (net.Conn, error)
	tls            *tls.Config
	// tlsNodeIdentity: the Server's certificate must name the node
	// (WithMutualTLS).
	tlsNodeIdentity bool
}

func defaultClientOptions() clientOptions {
	var d net.Dialer
	return clientOptions{
		log:            logr.Discard(),
		queueLimit:     DefaultQueueLimit,
		queueBytes:     DefaultQueueBytes,
		callTimeout:    DefaultCallTimeout,
		connectTimeout: DefaultConnectTimeout,
		backoffBase:    DefaultBackoffBase,
		backoffMax:     DefaultBackoffMax,
		nodeIdle:       DefaultNodeIdleTimeout,
		peerTimeout:    DefaultPeerTimeout,
		maxMessageSize: wire.DefaultMaxMessageSize,
		dial:           d.DialContext,
	}
}

// WithLogger sets where the Client logs connection changes, dropped
// messages and errors. The default discards. V(1) adds state transitions.
func WithLogger(l logr.Logger) Option {
	return func(o *clientOptions) { o.log = l }
}

// WithCloseRegistry makes Close close the registry too, when it has a
// Close method: for a registry made only for this Client.
func WithCloseRegistry() Option {
	return func(o *clientOptions) { o.closeRegistry = true }
}

// WithRegisterer registers the Client's metrics (skycall_sender_*, labelled
// by node) with r; Close unregisters them. By default no metrics are
// registered, so several Clients in one process do not collide; give each
// registered Client its own Registerer (prometheus.WrapRegistererWith can
// add a distinguishing label).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *clientOptions) { o.registerer = r }
}

// WithQueueLimit bounds how many messages may wait for one node (default
// DefaultQueueLimit). A message that finds the queue full waits for room
// within its ctx, or fails with ErrQueueFull under WithQueueFullError.
// n <= 0 keeps the default.
func WithQueueLimit(n int) Option {
	return func(o *clientOptions) {
		if n > 0 {
			o.queueLimit = n
		}
	}
}

// WithQueueBytes bounds the payload bytes waiting for one node (default
// DefaultQueueBytes). A single message larger than the bound is still
// accepted when the queue is empty. n <= 0 keeps the default.
func WithQueueBytes(n int) Option {
	return func(o *clientOptions) {
		if n > 0 {
			o.queueBytes = n
		}
	}
}

// WithQueueFullError makes Send and Call fail at once with ErrQueueFull when
// the node's queue is full, instead of waiting for room.
func WithQueueFullError() Option {
	return func(o *clientOptions) { o.failWhenFull = true }
}

// WithPeerTimeout sets how a ready connection finds out that its peer
// stopped working while its socket stays open (a process stopped, hung, or
// no longer reading): when nothing has been received for d, the Client
// writes a probe (the protocol's node query, which skynet and skycall both
// answer); when neither the probe nor anything else is answered within
// another d after the last byte was written, or a write makes no progress
// for d, the connection is closed. Its in-flight calls then fail with
// ErrConnectionLost wrapping ErrPeerUnresponsive and the node reconnects.
// A silent peer is noticed within 2.25·d of its last answer. Probes are
// counted in skycall_sender_written_messages_total; on a busy connection
// there are none. d also bounds the probe a connection closed in order
// (drained, idle, Close) writes to prove its pushes received: Close waits
// at most d for it. d <= 0 keeps DefaultPeerTimeout (10 s).
func WithPeerTimeout(d time.Duration) Option {
	return func(o *clientOptions) {
		if d > 0 {
			o.peerTimeout = d
		}
	}
}

// WithCallTimeout bounds Calls whose ctx has no deadline (default
// DefaultCallTimeout), so that no call waits forever on a silent peer. The
// error then wraps context.DeadlineExceeded and reads as a ctx deadline's
// does, naming this timeout instead. It is enforced by one sweep per
// tenth of d, so it fires between d and 1.1×d. d < 0 disables it.
func WithCallTimeout(d time.Duration) Option {
	return func(o *clientOptions) {
		if d != 0 {
			o.callTimeout, o.callTimeoutSet = d, true
		}
	}
}

// WithConnectTimeout bounds one attempt to dial a node and confirm it
// (default DefaultConnectTimeout). d <= 0 keeps the default.
func WithConnectTimeout(d time.Duration) Option {
	return func(o *clientOptions) {
		if d > 0 {
			o.connectTimeout = d
		}
	}
}

// WithBackoff sets the delay between failed connection attempts to one
// node: base × 1.6^(n-1), capped at max, with ±20% jitter (defaults
// DefaultBackoffBase, DefaultBackoffMax). Values <= 0 keep the defaults.
func WithBackoff(base, max time.Duration) Option {
	return func(o *clientOptions) {
		if base > 0 {
			o.backoffBase = base
		}
		if max > 0 {
			o.backoffMax = max
		}
		if o.backoffMax < o.backoffBase {
			o.backoffMax = o.backoffBase
		}
	}
}

// WithNodeIdleTimeout sets how long a node may go unused before the Client
// forgets it (default DefaultNodeIdleTimeout, 5 minutes): a node with
// nothing queued, no call in flight and no Send or Call for d closes its
// connection (once a probe has proven the pushes written on it), stops
// following its registry entry and drops its metric series, so that a
// mistyped or retired node name does not keep a goroutine, a watch and
// metrics until Close. The next message to it starts it afresh
// (resolve, connect, confirm). d <= 0 keeps every node until Close.
func WithNodeIdleTimeout(d time.Duration) Option {
	return func(o *clientOptions) {
		o.nodeIdle = d
	}
}

// WithMaxMessageSize bounds one payload, sent or received (default
// wire.DefaultMaxMessageSize, 16 MiB). A larger Send or Call fails with
// ErrMessageTooLarge before anything is queued; a larger reply breaks the
// connection, as it would for skynet. n <= 0 keeps the default.
func WithMaxMessageSize(n int) Option {
	return func(o *clientOptions) {
		if n > 0 {
			o.maxMessageSize = n
		}
	}
}

// WithDialer sets how connections are opened (default net.Dialer). The
// network is "tcp".
func WithDialer(dial func(ctx context.Context, network, address string) (net.Conn, error)) Option {
	return func(o *clientOptions) {
		if dial != nil {
			o.dial = dial
		}
	}
}

// WithTLS makes the Client speak TLS to every node (a skycall Server built
// with server.WithTLS). skynet's own cluster speaks plain TCP. If cfg has no
// ServerName, the host of the node's address is used.
func WithTLS(cfg *tls.Config) Option {
	return func(o *clientOptions) { o.tls = cfg }
}

// WithMutualTLS makes the Client speak TLS with f's certificates, and
// accept a node only when the Server's certificate names it (a DNS SAN
// equal to the node name, or a URI SAN skycall://NODE); otherwise the
// connection fails with ErrWrongNode. Use it with Servers given
// server.WithMutualTLS from the same CA.
func WithMutualTLS(f *tlsfiles.Files) Option {
	return func(o *clientOptions) {
		o.tls = f.ClientConfig()
		o.tlsNodeIdentity = true
	}
}
