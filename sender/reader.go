package sender

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skycall-io/skycall/sender/wire"
)

// The reader side of a connection: who reads it, reading a reply, and
// matching it to its call through the node's in-flight table.
//
// A goroutine blocked in Read is woken by the netpoller; handing what it
// read to another goroutine costs one more wake-up, a large part of a lone
// round trip (bench/README.md). So a caller whose call is the only one in
// flight reads its own reply, and the connection's reader goroutine reads
// for everybody else. The role is held by one of them at a time
// (readRole); the frames, whoever reads them, go through readOne.
//
// The reader goroutine leaves the role only when callers asked for it and
// no call is in flight; it takes it back when a call is in flight that
// nobody reads for, or when callers stopped reading for readLull (someone
// must see a push's error reply, or the peer closing the connection).
// While one caller reads through a long call it waits without a timer. A
// caller reading its own reply stops when its reply is delivered (by
// itself, or by the sweeper or a failure), and, through a read deadline,
// when its ctx ends or its default timeout passes: a frame the deadline cut
// is finished by the next reader (wire decoders go on after such errors).

// readLull is how long the reader goroutine leaves the connection to
// callers that read their own replies after the last of them did.
const readLull = 2 * time.Millisecond

// Who holds the read role.
const (
	readNone   = iota
	readBG     // the connection's reader goroutine
	readCaller // a caller reading its own reply
)

// readRole is the right to read a connection.
//
// Lock order: mu before inflight.mu; mu is never held with node.mu
// (conn.go).
type readRole struct {
	mu      sync.Mutex
	holder  uint8  // guarded by mu
	dead    bool   // guarded by mu: a read failed; nobody reads again
	callers uint64 // guarded by mu: reads by callers, for the lull
	armed   bool   // guarded by mu: the reader goroutine times a lull (else endRead must wake it)
	lulls   uint64 // guarded by mu: lulls the reader goroutine waited out, for tests

	wanted atomic.Bool   // a caller found the reader goroutine reading
	wake   chan struct{} // 1-buffered: wakes the reader goroutine
}

// aLongTimeAgo is a read deadline that interrupts a Read at once.
var aLongTimeAgo = time.Unix(1, 0)

// readLoop is the connection's reader goroutine.
func (c *nodeConn) readLoop() {
	n := c.n
	defer n.c.wg.Done()
	lull := time.NewTimer(time.Hour)
	lull.Stop()
	defer lull.Stop()
	eager := true // take the role as soon as it is free
	for {
		if !c.takeRead(eager, lull) {
			return
		}
		for {
			if err := c.readOne(); err != nil {
				if c.interrupted(err) {
					_ = c.nc.SetReadDeadline(time.Time{})
					continue
				}
				c.readFailed(err)
				return
			}
			if c.rd.wanted.Load() && c.yieldRead() {
				break
			}
		}
		eager = false
	}
}

// takeRead waits until the reader goroutine should read, and gives it the
// role; false when the connection is closed or a read failed. It times
// lulls while callers come and go; once one caller has read through a
// whole lull (a long call), it waits for that caller's endRead with no
// timer: a connection whose lone call lasts costs no wake-ups.
func (c *nodeConn) takeRead(eager bool, lull *time.Timer) bool {
	r := &c.rd
	long := false // a caller read through the last lull
	for {
		r.mu.Lock()
		if r.dead {
			r.mu.Unlock()
			return false
		}
		if r.holder == readNone && (eager || c.n.inflight.len() > 0) {
			r.holder, r.armed = readBG, false
			r.mu.Unlock()
			return true
		}
		seen := r.callers
		armed := !long || r.holder == readNone
		r.armed = armed
		r.mu.Unlock()
		var fire <-chan time.Time
		if armed {
			lull.Reset(readLull)
			fire = lull.C
		}
		select {
		case <-r.wake:
			eager, long = false, false
		case <-fire:
			r.mu.Lock()
			r.lulls++
			quiet := r.callers == seen
			// Nobody read during the lull: read for what nobody waits for.
			eager = quiet && r.holder == readNone
			long = quiet && r.holder == readCaller
			r.mu.Unlock()
		case <-c.done:
			return false
		}
	}
}

// yieldRead gives the role up, when no call is in flight, to the callers
// that asked for it.
func (c *nodeConn) yieldRead() bool {
	r := &c.rd
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.n.inflight.len() > 0 {
		return false
	}
	r.wanted.Store(false)
	r.holder = readNone
	return true
}

// tryRead gives the role to a caller whose call on c is the only one in
// flight, if nobody holds it. With more calls in flight the reader
// goroutine reads: a caller reading for others would hold them up.
func (c *nodeConn) tryRead() bool {
	r := &c.rd
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.dead:
		return false
	case r.holder == readBG:
		if !r.wanted.Load() {
			r.wanted.Store(true)
		}
		return false
	case r.holder != readNone:
		return false
	case c.n.inflight.len() != 1:
		c.kickReader()
		return false
	}
	r.holder = readCaller
	return true
}

// endRead gives a caller's role up, and wakes the reader goroutine when
// calls are still in flight or it is not timing a lull.
func (c *nodeConn) endRead() {
	r := &c.rd
	r.mu.Lock()
	r.holder = readNone
	r.callers++
	if !r.armed || c.n.inflight.len() > 0 {
		// Calls are in flight, or the reader goroutine waits for this
		// long call with no timer: it must read, or time a lull again.
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	r.mu.Unlock()
}

// kickReader makes sure someone reads for a call entered in flight by
// somebody who will not read for it (the watchdog's probe).
func (c *nodeConn) kickReader() {
	select {
	case c.rd.wake <- struct{}{}:
	default:
	}
}

// interrupted reports whether err is a read deadline that interrupted a
// reader (for a caller whose wait ended, or left over from one), not the
// end of the connection.
func (c *nodeConn) interrupted(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// interruptRead makes a blocked Read return.
func (c *nodeConn) interruptRead() { _ = c.nc.SetReadDeadline(aLongTimeAgo) }

// readFailed ends reading c: the connection is lost.
func (c *nodeConn) readFailed(err error) {
	r := &c.rd
	r.mu.Lock()
	r.dead, r.holder = true, readNone
	r.mu.Unlock()
	c.n.connLost(c, err, 0)
}

// readFor reads c, whose role the caller of w holds, until w's delivery
// comes, and gives the role up. It reports whether it received that
// delivery from w.done; if not, ctx ended, w's default timeout passed or
// the connection failed, and the caller waits for w as any caller does.
func (c *nodeConn) readFor(ctx context.Context, w *call) bool {
	var deadline time.Time
	if w.deadline != 0 {
		// The sweeper fails w at this time: stop reading then, to take
		// its delivery.
		deadline = c.n.c.start.Add(time.Duration(w.deadline - 1))
		_ = c.nc.SetReadDeadline(deadline)
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.interruptFn)
	}
	got := false
	var failed error
loop:
	for {
		select {
		case <-w.done:
			got = true
			break loop
		default:
		}
		err := c.readOne()
		switch {
		case err == nil:
		case !c.interrupted(err):
			failed = err
			break loop
		case ctx.Err() != nil || !deadline.IsZero() && !time.Now().Before(deadline):
			break loop
		default:
			_ = c.nc.SetReadDeadline(deadline) // left over from an earlier caller
		}
	}
	interruptLeft := stop != nil && !stop() // the interrupt ran, or will
	if interruptLeft || !deadline.IsZero() {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	if failed != nil {
		c.readFailed(failed) // fails w, unless it is still to be written
		return false
	}
	c.endRead()
	return got
}

// readOne reads one reply and delivers it to the call waiting for it. Its
// caller holds the read role.
func (c *nodeConn) readOne() error {
	n := c.n
	resp, err := c.dec.Next()
	if err != nil {
		return err
	}
	c.lastRead.Store(time.Now().UnixNano())
	w := n.inflight.take(resp.Session)
	if w == nil {
		n.unmatched(resp)
		return nil
	}
	c.ack(w.seq)
	n.m.readBytes.Add(float64(len(resp.Payload)))
	if resp.OK {
		if w.dst != nil {
			w.reply = append(w.dst, resp.Payload...)
		} else {
			w.reply = append(make([]byte, 0, len(resp.Payload)), resp.Payload...)
		}
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
	return nil
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
	n.c.metrics.dropped.WithLabelValues(n.name, dropRejected).Inc()
	now := time.Now().UnixNano()
	if last := lastRejectLog.Load(); now-last > int64(time.Second) && lastRejectLog.CompareAndSwap(last, now) {
		n.log.Info("Node rejected a push", "message", string(resp.Payload))
	}
}

// inflight is a node's table of calls encoded for or written to a
// connection, by session: the reader takes a call out when its reply comes,
// a withdrawal or a failure takes it out otherwise; whoever takes it out
// delivers to it (or owns it), so each call gets exactly one delivery.
//
// inflight.mu is a leaf, taken under node.mu, under readRole.mu or alone
// (conn.go). The reader takes it without node.mu, so that replies never
// wait for senders.
type inflight struct {
	mu    sync.Mutex
	calls map[uint32]*call // guarded by mu
}

func newInflight() *inflight {
	return &inflight{calls: make(map[uint32]*call)}
}

// add records w under w.session.
func (t *inflight) add(w *call) {
	t.mu.Lock()
	t.calls[w.session] = w
	t.mu.Unlock()
}

// take removes and returns the call waiting for session, or nil.
func (t *inflight) take(session uint32) *call {
	t.mu.Lock()
	w := t.calls[session]
	if w != nil {
		delete(t.calls, session)
	}
	t.mu.Unlock()
	return w
}

// remove removes w if it is still in the table and reports whether it was:
// if not, someone else took it and delivers to it.
func (t *inflight) remove(w *call) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.calls[w.session] != w {
		return false
	}
	delete(t.calls, w.session)
	return true
}

// takeIf removes the calls for which match is true and appends them to dst.
func (t *inflight) takeIf(dst []*call, match func(*call) bool) []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s, w := range t.calls {
		if match(w) {
			delete(t.calls, s)
			dst = append(dst, w)
		}
	}
	return dst
}

// appendIf appends the calls for which match is true to dst, leaving them
// in the table.
func (t *inflight) appendIf(dst []*call, match func(*call) bool) []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.calls {
		if match(w) {
			dst = append(dst, w)
		}
	}
	return dst
}

// any reports whether some call matches.
func (t *inflight) any(match func(*call) bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.calls {
		if match(w) {
			return true
		}
	}
	return false
}

// len is the number of calls in the table.
func (t *inflight) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.calls)
}
