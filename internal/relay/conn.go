package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/wire"
)

// pendingLimit is how many bytes of replies may wait for a skynet that does
// not read them before its connection is closed.
const pendingLimit = 64 << 20

// keepBuffer is the largest write buffer kept for reuse.
const keepBuffer = 1 << 20

// conn is one connection from skynet, for one node. Its reader forwards
// requests in order; a reply is written by the callback that brings it,
// or, when another is writing, by that one, which writes until nothing is
// left: no goroutine to wake for a lone reply, and a batch under load.
type conn struct {
	r    *Relay
	nc   net.Conn
	node string
	m    *nodeMetrics

	// ctx ends when the connection closes: calls still waiting have nowhere
	// to reply, so they are withdrawn.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // guards the fields below
	pending []byte     // encoded replies not yet written
	spare   []byte
	writing bool // a callback is writing pending
	closed  bool
}

func newConn(r *Relay, nc net.Conn, node string) *conn {
	c := &conn{r: r, nc: nc, node: node, m: r.metrics.node(node)}
	c.ctx, c.cancel = context.WithCancel(r.ctx)
	return c
}

func (c *conn) readLoop() {
	defer c.r.wg.Done()
	defer c.close()
	dec := wire.NewRequestDecoder(bufio.NewReaderSize(c.nc, wire.ReadBufferSize),
		wire.Limits{MaxMessageSize: c.r.opts.maxMessageSize})
	defer dec.Close()
	for {
		req, err := dec.Next()
		if err != nil {
			if c.readFailed(err) {
				continue
			}
			return
		}
		c.forward(req)
	}
}

// forward hands one request to the Forwarder, in the order read. A push
// returns once queued; a call once it has its place in the node's FIFO.
func (c *conn) forward(req *wire.Request) {
	start := time.Now()
	msg := sender.Message{Addr: req.Name, Handle: req.Address, Push: req.Push, Payload: req.Payload, Trace: req.Trace}
	if req.Push {
		ctx, cancel := context.WithTimeout(c.r.ctx, c.r.opts.wait)
		err := c.r.fwd.Forward(ctx, c.node, &msg, nil)
		cancel()
		c.m.done(kindPush, start, err)
		if err != nil {
			c.r.log.Info("Dropped a push from skynet", "node", c.node, "service", serviceOf(req), "err", err.Error())
		}
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.r.opts.wait)
	session := req.Session
	c.m.waiting.Inc()
	c.r.metrics.calls.Add(1)
	done := func(reply []byte, err error) {
		cancel()
		c.m.waiting.Dec()
		c.r.metrics.calls.Add(-1)
		c.m.done(kindCall, start, err)
		c.respond(session, reply, err)
	}
	if err := c.r.fwd.Forward(ctx, c.node, &msg, done); err != nil {
		done(nil, err)
	}
}

// serviceOf names a request's service for logs.
func serviceOf(req *wire.Request) string {
	if req.Name != "" {
		return req.Name
	}
	return fmt.Sprintf(":%08x", req.Address)
}

// respond queues the reply to session: the node's reply as it came, or an
// error text. A remote error's text is the remote node's own, byte for
// byte (skynet's "Invalid name", "name not found", ...).
func (c *conn) respond(session uint32, reply []byte, err error) {
	resp := wire.Response{Session: session, OK: err == nil, Payload: reply}
	if err != nil {
		var re *sender.RemoteError
		if errors.As(err, &re) {
			resp.Payload = []byte(re.Message)
		} else {
			resp.Payload = fmt.Appendf(nil, "skycall relay: node %s: %v", c.node, err)
		}
		if len(resp.Payload) > wire.MultiPart {
			resp.Payload = resp.Payload[:wire.MultiPart] // error replies are never multipart
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.pending) > pendingLimit {
		c.r.log.Info("Closing a connection from skynet: it reads no replies", "node", c.node, "pending", len(c.pending))
		c.closeLocked()
		return
	}
	c.pending = wire.AppendResponse(c.pending, &resp)
	if c.writing {
		return // the writer takes it
	}
	c.writing = true
	for len(c.pending) > 0 && !c.closed {
		buf := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.mu.Unlock()
		_, err := c.nc.Write(buf)
		c.mu.Lock()
		if cap(buf) <= keepBuffer {
			c.spare = buf[:0]
		}
		if err != nil {
			c.closeLocked()
		}
	}
	c.writing = false
}

// readFailed logs a decode or read error and reports whether the stream is
// still usable. A malformed call gets the reply skynet's receiver gives.
func (c *conn) readFailed(err error) bool {
	var de *wire.DecodeError
	if errors.As(err, &de) {
		if de.Fatal {
			c.r.log.Error(err, "Closing a connection from skynet: the request stream cannot be decoded", "node", c.node)
			return false
		}
		if de.Session != 0 && !de.IsPush() {
			var text string
			switch {
			case errors.Is(de.Err, wire.ErrOrphanPart):
				text = wire.TextInvalidName
			case errors.Is(de.Err, wire.ErrBadReassembly):
				text = wire.TextInvalidLargeReq
			case errors.Is(de.Err, wire.ErrMessageTooLarge):
				text = fmt.Sprintf("message too large: the relay forwards requests of at most %d bytes", c.r.opts.maxMessageSize)
			default:
				text = fmt.Sprintf("skycall relay: malformed request: %v", err)
			}
			c.respond(de.Session, nil, &sender.RemoteError{Node: c.node, Message: text})
		}
		c.r.log.Info("Dropped a malformed request from skynet", "node", c.node, "err", err.Error())
		return true
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.r.log.V(1).Info("Connection from skynet closed", "node", c.node, "err", err.Error())
	}
	return false
}

func (c *conn) close() {
	c.mu.Lock()
	c.closeLocked()
	c.mu.Unlock()
}

func (c *conn) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	c.cancel()
	c.nc.Close()
	c.r.removeConn(c) // lock order: conn.mu before Relay.mu
}
