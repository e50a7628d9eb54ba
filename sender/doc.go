// Package sender brings skynet's cluster.send and cluster.call to Go: a
// Client that sends pushes and calls to named nodes speaking skynet's
// cluster protocol (skynet nodes, or skycall Servers: package sender/server).
//
//	c := sender.New(registry.NewStatic(map[string]string{"db": "10.0.0.7:2528"}))
//	defer c.Close()
//	err := c.Send(ctx, "db", "@store", payload)          // push, no reply
//	reply, err := c.Call(ctx, "db", "@store", payload)   // request/response
//	h, err := c.Query(ctx, "db", "store")                // numeric handle by name
//	vals, err := c.CallValues(ctx, "db", "@store", "get", "key") // skynet.pack'ed
//
// In a pod, kube.NewClient() (package sender/kube, the only one that links
// client-go) follows the namespace's ClusterNodes, as the skycall operator
// resolves them.
//
// # Connections
//
// Each node has one connection, opened on the first message to it (nothing
// is resolved or connected before), and a small state machine (State: idle,
// resolving, connecting, confirming, ready, backoff, down). A connection is
// ready once TCP is connected and one protocol round trip has been answered:
// a query for the reserved name wire.NodeQueryName, which a skycall Server
// answers with its node name (another name is the wrong node: ErrWrongNode,
// disconnect, look up again) and a skynet node with "name not found" (or,
// with skycall's Lua service, lua/skycall, with the handle of a service
// that tells its node name and incarnation in a second round trip).
// Broken connections are reopened with exponential backoff and jitter
// (WithBackoff); a registry change of address moves the node, and the old
// connection closes once the calls written on it have their replies and a
// probe has proven its pushes received. A node that becomes absent or not
// ready in the registry keeps a connection it already has, as skynet's
// merging reload does, until that connection breaks.
//
// A node Draining in the registry (its pod is terminating, usually to be
// replaced) is different: nothing more is written to its connection, new
// sends and calls wait in the FIFO, in order, the calls already written get
// their replies (within WithCallTimeout) and a probe proves the pushes
// written there received (within WithPeerTimeout) before the connection
// closes, and the FIFO goes to the replacement once it is Ready and
// confirmed. A node's identity is its name and its incarnation
// (registry.Entry.Incarnation, the pod UID): a new incarnation, even at the
// same address, is a new connection, and a skycall Server that reports its
// incarnation (server.WithIncarnation, or SKYCALL_INCARNATION from the downward
// API) is refused if it is not the one the registry names (ErrWrongNode,
// retried). A skynet peer answers neither name nor incarnation: it is
// checked by address only. docs/rolling-restarts.md says how to set a pod's
// preStop and termination grace so that senders see the drain before the
// pod stops reading.
//
// A node left idle (nothing queued, no call in flight, no Send or Call) for
// WithNodeIdleTimeout (default 5 minutes) is forgotten: its connection
// closes (once a probe has proven its pushes), its registry watch stops,
// its metric series are deleted and its goroutine ends, so that mistyped
// or retired node names do not pile up.
// The next message to it starts it afresh, as on first use; since nothing
// was queued, no ordering is lost.
//
// # Ordering
//
// Messages to one node leave in the order Send and Call were called (for
// calls made one after another, or made concurrently and ordered by the
// caller, as in skynet). Until the node is ready, sends and calls wait in
// one FIFO per node; when it becomes ready the FIFO is handed to the
// connection in order, in one step, and only then do new messages take the
// direct path, so nothing overtakes a queued message (skynet's confirm
// hand-off). The same holds across reconnects for messages not yet written.
// Messages over 32 KiB are split into parts as the protocol says and
// written whole, never interleaved with other messages, so order is kept;
// the receiver handles each message when its last part arrives.
//
// # Delivery: nothing is lost silently
//
// Every message is delivered, or its caller gets a typed error, or (a Send
// whose caller has already returned) it is counted in
// skycall_sender_dropped_total and logged. In detail:
//
//   - An absent node (not in the registry, not ready, or the registry still
//     loading) makes callers wait, within their ctx; a no-wait registry
//     (skynet's __nowaiting) fails them at once with ErrUnknownNode.
//   - A node down in the registry (skynet's `name = false`, ClusterNode
//     spec.down) fails queued and new messages at once with ErrNodeDown and
//     closes its connection. Queued Sends are dropped and counted.
//   - A queued Call whose ctx ends is removed and returns the ctx error: it
//     is certainly not sent. A Call whose ctx ends after it was written
//     returns the ctx error and its late reply is discarded. A Call whose ctx
//     has no deadline is bounded by WithCallTimeout (default 30s): it fails
//     between d and 1.1·d after it was made, never before d.
//   - When a connection breaks, calls written on it fail at once with
//     ErrConnectionLost: they may or may not have been processed. Messages
//     not yet written stay queued and go out, in order, after reconnecting.
//     Sends in a write that failed before any byte left are counted as
//     dropped (reason connection_lost: they never arrived). A Send that was
//     written is known to have arrived once any reply on that connection to
//     a message written after it comes back (TCP keeps order; an idle
//     connection's probe counts); those written and not proven when the
//     connection breaks are counted and logged as dropped with reason
//     unconfirmed: outcome unknown, some did arrive. skynet's own cluster
//     has the same hole, uncounted. Use Call when you must know.
//   - A connection closed in order (drained, idle, or by Close) first
//     writes a probe after its last push, so that a clean close counts no
//     push unconfirmed; a probe unanswered within WithPeerTimeout, or a
//     connection that breaks meanwhile, counts them.
//   - A peer that stops answering or reading while its socket stays open
//     (a stopped or hung process) is probed with the protocol's node query
//     after WithPeerTimeout (default 10s) of silence; when neither the probe
//     nor anything else is answered within that much again, or a write
//     makes no progress for that long, the connection is closed as broken,
//     with in-flight calls failing with ErrConnectionLost wrapping
//     ErrPeerUnresponsive: noticed within 2.25 times the peer timeout.
//   - A push the remote node rejects (for example "Invalid name") is counted
//     (reason rejected) and logged, since its caller has gone.
//   - Close fails queued and in-flight calls with ErrClosed and drops queued
//     Sends (counted, reason closed); it waits for the probes that prove
//     the pushes already written, at most WithPeerTimeout. No goroutine
//     outlives Close.
//
// # Bounds
//
// Each node's queue is bounded (WithQueueLimit messages, WithQueueBytes
// payload bytes; defaults 65536 and 64 MiB), counting messages waiting for
// the node and those waiting for the connection's writer. When it is full,
// Send and Call wait for room within their ctx, or fail with ErrQueueFull
// under WithQueueFullError. A payload over WithMaxMessageSize (default
// 16 MiB) fails with ErrMessageTooLarge before anything is queued.
//
// # Errors
//
// Errors wrap ErrUnknownNode, ErrNodeDown, ErrQueueFull, ErrConnectionLost,
// ErrPeerUnresponsive, ErrMessageTooLarge, ErrClosed, ErrWrongNode,
// ErrRegistry or a ctx error,
// for errors.Is, and say which node and what to do. A remote failure is a
// *RemoteError carrying the remote text.
//
// # Security
//
// skynet's cluster protocol is plain TCP with no authentication: anyone who
// can reach a node's port can call its services. Between skycall nodes,
// tlsfiles.Load with WithMutualTLS and server.WithMutualTLS gives mutual TLS:
// certificates are read again when their files change, the Server requires
// a client certificate from the CA bundle, and the Client accepts a node
// only when the Server's certificate names it (DNS SAN or URI
// skycall://NODE). Links with skynet nodes stay plain TCP; keep them on a
// network only trusted peers reach (a NetworkPolicy in Kubernetes).
//
// # Performance
//
// The ready path takes one short lock per message: the message is encoded
// into the node's shared write buffer and a writer goroutine per connection
// swaps buffers and writes each batch with one Write; a reader goroutine per
// connection matches replies to pooled call waiters by session. A call that
// is alone in flight skips both hand-offs, which would double its round
// trip: its caller writes the request when the writer is idle and reads its
// own reply. There is no goroutine or timer per message (the default call
// timeout is one sweep per tenth of it); a Send allocates nothing and a
// Call only its reply (a lone Call whose ctx can be cancelled two more, for
// the context.AfterFunc that interrupts its read).
//
// # Observability
//
// WithRegisterer registers Prometheus metrics labelled by node
// (skycall_sender_node_state, _queue_messages, _queue_bytes,
// _queue_wait_seconds, _calls_total by result, _written_messages_total,
// _written_bytes_total, _reply_bytes_total, _reconnects_total,
// _dropped_total by reason); none are registered by default. WithLogger
// takes a logr.Logger. A Send or Call whose ctx carries an OpenTelemetry
// span starts a client span and writes its W3C traceparent as skynet's
// trace tag before the message (WithTracerProvider, else the global
// provider; server.WithTracerProvider on the other side); skynet passes it on
// to its onward cluster.calls. See docs/tracing.md.
package sender
