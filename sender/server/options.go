package server

import (
	"crypto/tls"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/sender/tlsfiles"
	"github.com/skycall-io/skycall/sender/wire"
)

// Defaults of a Server's options.
const (
	// DefaultKeepAlive is the TCP keepalive period set on accepted
	// connections, so that a peer that vanished without a FIN is noticed.
	DefaultKeepAlive = 30 * time.Second
	// DefaultServiceQueue is how many messages may wait for one service
	// before the connection readers that feed it stop reading.
	DefaultServiceQueue = 1024
	// DefaultMaxConns is how many connections a Server holds open at
	// once; more are closed as they are accepted, with a log line.
	DefaultMaxConns = 1024
	// DefaultMaxConnsPerPeer is how many of them one peer IP address
	// may hold (a skynet node opens one connection per peer node).
	DefaultMaxConnsPerPeer = 64
	// DefaultPartialBudget is how many bytes of requests partially
	// received (multipart messages being reassembled) all the connections of
	// a Server may hold at once: two messages of the default maximum size.
	DefaultPartialBudget = 2 * wire.DefaultMaxMessageSize
	// DefaultQueuedBudget is how many bytes of requests received and
	// waiting for their handler all the connections may hold; past it the
	// readers stop reading until handlers catch up. A request larger than
	// the budget is still taken when nothing else waits.
	DefaultQueuedBudget = 64 << 20
)

// A Option configures a Server; pass them to New.
type Option func(*options)

type options struct {
	maxMessageSize int
	maxPartial     int
	tls            *tls.Config
	log            logr.Logger
	keepAlive      time.Duration
	idleTimeout    time.Duration
	serviceQueue   int
	maxConns       int
	maxConnsPeer   int
	partialBudget  int64
	queuedBudget   int64
	incarnation    string
	registerer     prometheus.Registerer // WithRegisterer
	tracerProvider trace.TracerProvider  // WithTracerProvider
}

func defaultOptions() options {
	return options{
		maxMessageSize: wire.DefaultMaxMessageSize,
		maxPartial:     wire.DefaultMaxPartial,
		log:            logr.Discard(),
		keepAlive:      DefaultKeepAlive,
		serviceQueue:   DefaultServiceQueue,
		maxConns:       DefaultMaxConns,
		maxConnsPeer:   DefaultMaxConnsPerPeer,
		partialBudget:  DefaultPartialBudget,
		queuedBudget:   DefaultQueuedBudget,
		incarnation:    os.Getenv(EnvIncarnation),
	}
}

// WithMaxConns bounds the connections open at once (all peers together);
// a connection over it is closed as soon as it is accepted and the refusal
// is logged. n <= 0 keeps DefaultMaxConns.
func WithMaxConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConns = n
		}
	}
}

// WithMaxConnsPerPeer bounds the connections open at once from one peer
// IP address; a connection over it is closed as soon as it is accepted and
// the refusal is logged. n <= 0 keeps DefaultMaxConnsPerPeer.
func WithMaxConnsPerPeer(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConnsPeer = n
		}
	}
}

// WithPartialBudget bounds the bytes of multipart requests being
// reassembled across all connections. A request whose next part would go
// over it is dropped and its caller answered with an error; the connection
// stays open. n <= 0 keeps DefaultPartialBudget.
func WithPartialBudget(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.partialBudget = n
		}
	}
}

// WithQueuedBudget bounds the bytes of requests received and not yet
// handled across all connections; past it the connection readers wait for
// handlers to catch up (TCP flow control then slows the senders). n <= 0
// keeps DefaultQueuedBudget.
func WithQueuedBudget(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.queuedBudget = n
		}
	}
}

// EnvIncarnation is the environment variable a Server takes its
// incarnation from when WithIncarnation is not given: set it from the
// pod's UID with the downward API (fieldRef metadata.uid).
const EnvIncarnation = "SKYCALL_INCARNATION"

// WithIncarnation sets the incarnation the Server reports with its node
// name when a Client confirms a connection: for a pod, its UID, which is
// what the operator records and the Kubernetes registry hands to Clients.
// A Client whose registry names another incarnation at this address
// refuses the connection (a replaced pod's IP reused by another pod must
// not receive the old pod's traffic, nor the other way round). The
// default is the environment variable EnvIncarnation; "" reports none,
// and Clients then check the node name only.
func WithIncarnation(id string) Option {
	return func(o *options) { o.incarnation = id }
}

// WithMaxMessageSize bounds the size of one request payload after
// reassembly, and of one reply. A larger request is refused with an error
// reply as soon as its multipart header announces it, before any of its parts
// are buffered; a larger reply is replaced by an error reply. n <= 0 keeps the
// default, wire.DefaultMaxMessageSize (16 MiB).
func WithMaxMessageSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxMessageSize = n
		}
	}
}

// WithMaxPartial bounds how many multipart requests one connection may have
// half received at a time; a peer exceeding it is disconnected or refused as
// the wire decoder decides. n <= 0 keeps the default, wire.DefaultMaxPartial.
func WithMaxPartial(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxPartial = n
		}
	}
}

// WithTLS makes the Server speak TLS on every accepted connection. Use it on
// links between skycall nodes only: skynet's own cluster speaks plain TCP.
// A nil config keeps plain TCP.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.tls = cfg }
}

// WithLogger sets where the Server logs connection problems (malformed
// frames, broken peers, handler failures and panics). The default discards.
func WithLogger(l logr.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithKeepAlive sets the TCP keepalive period of accepted connections.
// 0 keeps the default (DefaultKeepAlive); a negative d disables
// keepalive. It applies only to listeners that return *net.TCPConn.
func WithKeepAlive(d time.Duration) Option {
	return func(o *options) {
		if d == 0 {
			d = DefaultKeepAlive
		}
		o.keepAlive = d
	}
}

// WithIdleTimeout closes a connection on which nothing was received for d
// while none of its requests is being handled. 0 (the default) never closes
// an idle connection; keepalive still detects dead peers.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.idleTimeout = d
		}
	}
}

// WithServiceQueue sets the default queue length of services registered
// without a WithQueueSize option. n <= 0 keeps DefaultServiceQueue.
func WithServiceQueue(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.serviceQueue = n
		}
	}
}

// A HandleOption configures one service registered with Server.Handle.
type HandleOption func(*handleOptions)

type handleOptions struct {
	concurrent bool
	queueSize  int
	reuse      bool
}

// WithConcurrent lets the handler of a service run for several messages at once,
// each on its own goroutine, instead of one message at a time in arrival
// order. The number running at once is bounded by the service's queue size;
// when the bound is reached the connection readers feeding the service wait.
func WithConcurrent() HandleOption {
	return func(o *handleOptions) { o.concurrent = true }
}

// WithReuseRequests lets the Server reuse each Request of this service, and its
// Payload, once the handler has returned: the handler must not keep the
// Request, its Payload or a slice of it past its return, nor hand them to a
// goroutine that does (copy what it keeps; returning the Payload as the
// reply is fine, as the reply is copied before the handler's call ends). It
// spares the allocation of every message of up to 64 KiB, and the garbage
// collection that follows. Without it, every Request belongs to its
// handler.
func WithReuseRequests() HandleOption {
	return func(o *handleOptions) { o.reuse = true }
}

// WithQueueSize sets how many messages may wait for this service (or, for a
// WithConcurrent service, run at once) before the connection readers that feed it
// stop reading their sockets. n <= 0 keeps the Server's WithServiceQueue.
func WithQueueSize(n int) HandleOption {
	return func(o *handleOptions) {
		if n > 0 {
			o.queueSize = n
		}
	}
}

// WithMutualTLS makes the Server speak TLS with f's certificates and
// require every client to present a certificate signed by f's CA bundle.
func WithMutualTLS(f *tlsfiles.Files) Option {
	return WithTLS(f.ServerConfig())
}
