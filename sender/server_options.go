package sender

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
	// DefaultServerKeepAlive is the TCP keepalive period set on accepted
	// connections, so that a peer that vanished without a FIN is noticed.
	DefaultServerKeepAlive = 30 * time.Second
	// DefaultServerServiceQueue is how many messages may wait for one service
	// before the connection readers that feed it stop reading.
	DefaultServerServiceQueue = 1024
	// DefaultServerMaxConns is how many connections a Server holds open at
	// once; more are closed as they are accepted, with a log line.
	DefaultServerMaxConns = 1024
	// DefaultServerMaxConnsPerPeer is how many of them one peer IP address
	// may hold (a skynet node opens one connection per peer node).
	DefaultServerMaxConnsPerPeer = 64
	// DefaultServerPartialBudget is how many bytes of requests partially
	// received (multipart messages being reassembled) all the connections of
	// a Server may hold at once: two messages of the default maximum size.
	DefaultServerPartialBudget = 2 * wire.DefaultMaxMessageSize
	// DefaultServerQueuedBudget is how many bytes of requests received and
	// waiting for their handler all the connections may hold; past it the
	// readers stop reading until handlers catch up. A request larger than
	// the budget is still taken when nothing else waits.
	DefaultServerQueuedBudget = 64 << 20
)

// A ServerOption configures a Server; pass them to NewServer.
type ServerOption func(*srvOptions)

type srvOptions struct {
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
	registerer     prometheus.Registerer // ServerRegisterer
	tracerProvider trace.TracerProvider  // ServerTracerProvider
}

func srvDefaultOptions() srvOptions {
	return srvOptions{
		maxMessageSize: wire.DefaultMaxMessageSize,
		maxPartial:     wire.DefaultMaxPartial,
		log:            logr.Discard(),
		keepAlive:      DefaultServerKeepAlive,
		serviceQueue:   DefaultServerServiceQueue,
		maxConns:       DefaultServerMaxConns,
		maxConnsPeer:   DefaultServerMaxConnsPerPeer,
		partialBudget:  DefaultServerPartialBudget,
		queuedBudget:   DefaultServerQueuedBudget,
		incarnation:    os.Getenv(EnvIncarnation),
	}
}

// ServerMaxConns bounds the connections open at once (all peers together);
// a connection over it is closed as soon as it is accepted and the refusal
// is logged. n <= 0 keeps DefaultServerMaxConns.
func ServerMaxConns(n int) ServerOption {
	return func(o *srvOptions) {
		if n > 0 {
			o.maxConns = n
		}
	}
}

// ServerMaxConnsPerPeer bounds the connections open at once from one peer
// IP address; a connection over it is closed as soon as it is accepted and
// the refusal is logged. n <= 0 keeps DefaultServerMaxConnsPerPeer.
func ServerMaxConnsPerPeer(n int) ServerOption {
	return func(o *srvOptions) {
		if n > 0 {
			o.maxConnsPeer = n
		}
	}
}

// ServerPartialBudget bounds the bytes of multipart requests being
// reassembled across all connections. A request whose next part would go
// over it is dropped and its caller answered with an error; the connection
// stays open. n <= 0 keeps DefaultServerPartialBudget.
func ServerPartialBudget(n int64) ServerOption {
	return func(o *srvOptions) {
		if n > 0 {
			o.partialBudget = n
		}
	}
}

// ServerQueuedBudget bounds the bytes of requests received and not yet
// handled across all connections; past it the connection readers wait for
// handlers to catch up (TCP flow control then slows the senders). n <= 0
// keeps DefaultServerQueuedBudget.
func ServerQueuedBudget(n int64) ServerOption {
	return func(o *srvOptions) {
		if n > 0 {
			o.queuedBudget = n
		}
	}
}

// EnvIncarnation is the environment variable a Server takes its
// incarnation from when ServerIncarnation is not given: set it from the
// pod's UID with the downward API (fieldRef metadata.uid).
const EnvIncarnation = "SKYCALL_INCARNATION"

// ServerIncarnation sets the incarnation the Server reports with its node
// name when a Client confirms a connection: for a pod, its UID, which is
// what the operator records and the Kubernetes registry hands to Clients.
// A Client whose registry names another incarnation at this address
// refuses the connection (a replaced pod's IP reused by another pod must
// not receive the old pod's traffic, nor the other way round). The
// default is the environment variable EnvIncarnation; "" reports none,
// and Clients then check the node name only.
func ServerIncarnation(id string) ServerOption {
	return func(o *srvOptions) { o.incarnation = id }
}

// ServerMaxMessageSize bounds the size of one request payload after
// reassembly, and of one reply. A larger request is refused with an error
// reply as soon as its multipart header announces it, before any of its parts
// are buffered; a larger reply is replaced by an error reply. n <= 0 keeps the
// default, wire.DefaultMaxMessageSize (16 MiB).
func ServerMaxMessageSize(n int) ServerOption {
	return func(o *srvOptions) {
		if n > 0 {
			o.maxMessageSize = n
		}
	}
}

// ServerMaxPartial bounds how many multipart requests one connection may have
// half received at a time; a peer exceeding it is disconnected or refused as
// the wire decoder decides. n <= 0 keeps the default, wire.DefaultMaxPartial.
func ServerMaxPartial(n int) ServerOption {
	return func(o *srvOptions) {
		if n > 0 {
			o.maxPartial = n
		}
	}
}

// ServerTLS makes the Server speak TLS on every accepted connection. Use it on
// links between skycall nodes only: skynet's own cluster speaks plain TCP.
// A nil config keeps plain TCP.
func ServerTLS(cfg *tls.Config) ServerOption {
	return func(o *srvOptions) { o.tls = cfg }
}

// ServerLogger sets where the Server logs connection problems (malformed
// frames, broken peers, handler failures and panics). The default discards.
func ServerLogger(l logr.Logger) ServerOption {
	return func(o *srvOptions) { o.log = l }
}

// ServerKeepAlive sets the TCP keepalive period of accepted connections.
// 0 keeps the default (DefaultServerKeepAlive); a negative d disables
// keepalive. It applies only to listeners that return *net.TCPConn.
func ServerKeepAlive(d time.Duration) ServerOption {
	return func(o *srvOptions) {
		if d == 0 {
			d = DefaultServerKeepAlive
		}
		o.keepAlive = d
	}
}

// ServerIdleTimeout closes a connection on which nothing was received for d
// while none of its requests is being handled. 0 (the default) never closes
// an idle connection; keepalive still detects dead peers.
func ServerIdleTimeout(d time.Duration) ServerOption {
	return func(o *srvOptions) {
		if d >= 0 {
			o.idleTimeout = d
		}
	}
}

// ServerServiceQueue sets the default queue length of services registered
// without a QueueSize option. n <= 0 keeps DefaultServerServiceQueue.
func ServerServiceQueue(n int) ServerOption {
	return func(o *srvOptions) {
		if n > 0 {
			o.serviceQueue = n
		}
	}
}

// A HandleOption configures one service registered with Server.Handle.
type HandleOption func(*srvHandleOptions)

type srvHandleOptions struct {
	concurrent bool
	queueSize  int
	reuse      bool
}

// Concurrent lets the handler of a service run for several messages at once,
// each on its own goroutine, instead of one message at a time in arrival
// order. The number running at once is bounded by the service's queue size;
// when the bound is reached the connection readers feeding the service wait.
func Concurrent() HandleOption {
	return func(o *srvHandleOptions) { o.concurrent = true }
}

// ReuseRequests lets the Server reuse each Request of this service, and its
// Payload, once the handler has returned: the handler must not keep the
// Request, its Payload or a slice of it past its return, nor hand them to a
// goroutine that does (copy what it keeps; returning the Payload as the
// reply is fine, as the reply is copied before the handler's call ends). It
// spares the allocation of every message of up to 64 KiB, and the garbage
// collection that follows. Without it, every Request belongs to its
// handler.
func ReuseRequests() HandleOption {
	return func(o *srvHandleOptions) { o.reuse = true }
}

// QueueSize sets how many messages may wait for this service (or, for a
// Concurrent service, run at once) before the connection readers that feed it
// stop reading their sockets. n <= 0 keeps the Server's ServerServiceQueue.
func QueueSize(n int) HandleOption {
	return func(o *srvHandleOptions) {
		if n > 0 {
			o.queueSize = n
		}
	}
}

// ServerMutualTLS from the same CA.
func WithMutualTLS(f *tlsfiles.Files) Option {
	return func(o *clientOptions) {
		o.tls = f.ClientConfig()
		o.tlsNodeIdentity = true
	}
}

// ServerMutualTLS makes the Server speak TLS with f's certificates and
// require every client to present a certificate signed by f's CA bundle.
func ServerMutualTLS(f *tlsfiles.Files) ServerOption {
	return ServerTLS(f.ServerConfig())
}
