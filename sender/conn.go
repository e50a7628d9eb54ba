package sender

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/wire"
)

// nodeConn is one confirmed connection to a node: a writer goroutine that
// writes node.out in batches, one Write each, and a reader goroutine that
// matches replies to pending calls by session.
type nodeConn struct {
	n       *node
	nc      net.Conn
	addr    string
	peer    string // the node name a skycall Server gave; "" for skynet
	dec     *wire.ResponseDecoder
	readyAt time.Time

	// Guarded by n.mu: the range of out generations this connection took.
	firstGen, lastGen uint64

	wake    chan struct{} // 1-buffered: wakes the writer
	retired chan struct{} // closed when a move retires the connection: the writer stops

	draining   atomic.Bool // retired after a move; see node.startDrain
	drainTimer *time.Timer // guarded by n.mu

	done      chan struct{}
	closeOnce sync.Once
}

func (c *nodeConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

// connect dials addr, confirms the peer and makes it the node's connection.
func (n *node) connect(addr string) error {
	o := &n.c.opts
	n.redial.lastAddr = addr
	if n.redial.dials > 0 {
		n.m.reconnects.Inc()
	}
	n.redial.dials++
	n.setState(StateConnecting)
	ctx, cancel := context.WithTimeout(n.c.ctx, o.connectTimeout)
	defer cancel()
	nc, err := o.dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		_ = tc.SetKeepAlivePeriod(30 * time.Second)
		_ = tc.SetKeepAlive(true)
	}
	if o.tls != nil {
		cfg := o.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	n.setState(StateConfirming)
	c, err := n.confirm(ctx, nc, addr)
	if err != nil {
		nc.Close()
		return err
	}
	n.becomeReady(c)
	return nil
}

// confirm does one protocol round trip before anything queued is written:
// a query for wire.NodeQueryName. A skycall Server answers with its node
// name (another name is the wrong node); skynet answers "name not found",
// which still proves the peer speaks the protocol.
func (n *node) confirm(ctx context.Context, nc net.Conn, addr string) (*nodeConn, error) {
	query, err := luaseri.Pack(wire.NodeQueryName)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	session := n.sessions.Next()
	n.mu.Unlock()
	frame := appendRequest(nil, 0, "", session, false, query)

	if d, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(d)
	}
	var interrupted atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		interrupted.Store(true)
		_ = nc.SetDeadline(time.Unix(1, 0))
	})
	fail := func(err error) (*nodeConn, error) {
		stop()
		if interrupted.Load() && ctx.Err() != nil {
			return nil, fmt.Errorf("confirming %s: %w", addr, ctx.Err())
		}
		return nil, err
	}
	if _, err := nc.Write(frame); err != nil {
		return fail(fmt.Errorf("confirming %s: %w", addr, err))
	}
	br := bufio.NewReaderSize(nc, 16<<10)
	dec := wire.NewResponseDecoder(br, wire.Limits{MaxMessageSize: n.c.opts.maxMessageSize})
	resp, err := dec.Next()
	if err != nil {
		return fail(fmt.Errorf("confirming %s: no answer to the node query: %w", addr, err))
	}
	if !stop() {
		return fail(fmt.Errorf("confirming %s: %w", addr, ctx.Err()))
	}
	_ = nc.SetDeadline(time.Time{})
	if resp.Session != session {
		return nil, fmt.Errorf("confirming %s: answer for session %d, want %d: not a skynet cluster peer", addr, resp.Session, session)
	}
	peer := ""
	if !resp.OK {
		// skynet answers "name not found"; any error reply to the right
		// session still proves the peer speaks the protocol.
		if msg := string(resp.Payload); msg != "name not found" {
			n.log.Info("Unexpected answer to the node query; taking the peer for a skynet node", "address", addr, "answer", msg)
		}
	} else {
		vals, err := luaseri.Unpack(resp.Payload)
		if err != nil || len(vals) == 0 {
			return nil, fmt.Errorf("confirming %s: unreadable answer to the node query: %v", addr, err)
		}
		switch v := vals[0].(type) {
		case string:
			peer = v
		case []byte:
			peer = string(v)
		default:
			// A skynet node with a service registered under the reserved
			// name answers with its handle: still the protocol.
		}
		if peer != "" && peer != n.name {
			return nil, newNodeError(ErrWrongNode, nil,
				"skycall: %s answered as node %q, not %q; the registry entry for %q points at the wrong node", addr, peer, n.name, n.name)
		}
	}
	return &nodeConn{n: n, nc: nc, addr: addr, peer: peer, dec: dec,
		wake: make(chan struct{}, 1), retired: make(chan struct{}), done: make(chan struct{})}, nil
}

// becomeReady installs c and hands it everything queued, in order, in one
// critical section: nothing submitted later can overtake a queued message.
func (n *node) becomeReady(c *nodeConn) {
	n.mu.Lock()
	if n.state == StateClosed {
		n.mu.Unlock()
		c.nc.Close()
		return
	}
	c.readyAt = time.Now()
	c.firstGen, c.lastGen = n.outGen, n.outGen-1
	n.conn, n.mine, n.lastErr, n.reason = c, c, nil, ""
	n.setStateLocked(StateReady)
	drained := 0
	if n.fifo.n > 0 {
		held := true
		now := time.Now()
		n.pmu.Lock()
		for q := n.fifo.pop(); q != nil; q = n.fifo.pop() {
			if q.canceled {
				continue
			}
			n.appendLocked(q.addr, q.name, q.push, q.payload, q.call, &held)
			n.m.queueWait.Observe(now.Sub(q.enq).Seconds())
			drained++
		}
		n.pmu.Unlock()
	}
	n.signaled = false
	n.mu.Unlock()
	kind := "skycall"
	if c.peer == "" {
		kind = "skynet"
	}
	n.log.Info("Connected", "address", c.addr, "peer", kind, "drained", drained)
	n.c.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
}

// writeLoop writes node.out in batches: it swaps the buffer under the node's
// lock and writes it with one Write outside it.
func (c *nodeConn) writeLoop() {
	n := c.n
	defer n.c.wg.Done()
	var spare []byte
	for {
		n.mu.Lock()
		for n.conn == c && n.outMsgs == 0 {
			if len(n.out) > 0 { // only withdrawn calls: nothing to write
				n.resetOutLocked()
			}
			n.signaled = false
			n.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.retired:
				return
			case <-c.done:
				return
			}
			// Woken from idle by the first message of a burst: let the
			// callers that are runnable now append theirs too, so that one
			// write carries many messages instead of one syscall each.
			runtime.Gosched()
			n.mu.Lock()
		}
		if n.conn != c {
			n.mu.Unlock()
			return
		}
		buf := n.out
		if n.outCanceled > 0 {
			buf = n.compactOutLocked(spare[:0])
			spare = n.out
		}
		n.out = spare[:0]
		msgs, sends, bytes := n.outMsgs, n.outSends, n.outBytes
		c.lastGen = n.outGen
		n.outGen++
		clear(n.outCalls)
		n.outCalls = n.outCalls[:0]
		n.outMsgs, n.outSends, n.outBytes, n.outCanceled = 0, 0, 0, 0
		n.dequeuedLocked(msgs, bytes)
		n.mu.Unlock()

		if _, err := c.nc.Write(buf); err != nil {
			n.connLost(c, err, sends)
			return
		}
		n.m.written.Add(float64(msgs))
		n.m.writtenBytes.Add(float64(len(buf)))
		if cap(buf) > 4<<20 && len(buf) < cap(buf)/4 {
			buf = nil // do not keep a huge buffer after the burst that grew it
		}
		spare = buf
	}
}

// compactOutLocked copies out without the frames of withdrawn calls.
func (n *node) compactOutLocked(dst []byte) []byte {
	prev := 0
	for _, oc := range n.outCalls {
		if oc.canceled {
			dst = append(dst, n.out[prev:oc.start]...)
			prev = oc.end
		}
	}
	return append(dst, n.out[prev:]...)
}

// readLoop delivers replies to the calls waiting for them.
func (c *nodeConn) readLoop() {
	n := c.n
	defer n.c.wg.Done()
	for {
		resp, err := c.dec.Next()
		if err != nil {
			n.connLost(c, err, 0)
			return
		}
		n.pmu.Lock()
		w := n.pending[resp.Session]
		if w != nil {
			delete(n.pending, resp.Session)
		}
		n.pmu.Unlock()
		if w == nil {
			n.unmatched(resp)
			continue
		}
		n.m.readBytes.Add(float64(len(resp.Payload)))
		if resp.OK {
			w.reply = append(make([]byte, 0, len(resp.Payload)), resp.Payload...)
		} else {
			addr := w.name
			if addr == "" {
				addr = handleAddress(w.addr)
			}
			w.err = &RemoteError{Node: n.name, Address: addr, Message: string(resp.Payload)}
		}
		w.done <- struct{}{}
		if c.draining.Load() {
			n.endDrainIfDone(c)
		}
	}
}

// lastRejectLog rate-limits the log of pushes the remote rejected.
var lastRejectLog atomic.Int64

// unmatched handles a reply nobody waits for: an error reply to a push
// (session 0, for example "Invalid name") is counted and logged; a late
// reply to a withdrawn call is dropped.
func (n *node) unmatched(resp *wire.Response) {
	if resp.Session != 0 || resp.OK {
		return
	}
	n.c.metrics.dropped.WithLabelValues(n.name, "rejected").Inc()
	now := time.Now().UnixNano()
	if last := lastRejectLog.Load(); now-last > int64(time.Second) && lastRejectLog.CompareAndSwap(last, now) {
		n.log.Info("Node rejected a push", "message", string(resp.Payload))
	}
}
