package sender

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/wire"
)

// State is the connection state of one node, as grpc-go's
// connectivity.State is for a subchannel. It is the "state" label of the
// skycall_sender_node_state metric.
type State int32

const (
	// StateIdle: never used; nothing resolved or connected yet.
	StateIdle State = iota
	// StateResolving: waiting for the registry to give a usable address
	// (the node is absent, not ready, or the registry is still loading).
	StateResolving
	// StateConnecting: dialing the node's address.
	StateConnecting
	// StateConfirming: connected, waiting for the answer to the node query
	// that proves the peer speaks the protocol (and, for a skycall Server,
	// is the right node).
	StateConfirming
	// StateReady: confirmed; messages go straight to the connection.
	StateReady
	// StateBackoff: the last attempt failed or the connection broke;
	// waiting before the next attempt.
	StateBackoff
	// StateDown: administratively down in the registry; messages fail.
	StateDown
	// StateClosed: the Client was closed.
	StateClosed
)

var stateNames = [...]string{"idle", "resolving", "connecting", "confirming", "ready", "backoff", "down", "closed"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Where a call is, guarded by node.mu.
const (
	whereNone = iota // not queued (new, or being delivered)
	whereFIFO        // in the node's FIFO, not yet encoded
	whereOut         // encoded into node.out (gen == node.outGen) or written
)

// call is one Call waiting for its reply. It is pooled.
type call struct {
	done  chan struct{} // 1-buffered: exactly one delivery per use
	reply []byte
	err   error

	// Set before submit; read by the sweeper and for error messages.
	deadline uint64 // sweep epoch at which the default timeout fires; 0: none
	addr     uint32
	name     string

	// Guarded by node.mu.
	where   uint8
	session uint32
	gen     uint64
	outIdx  int
	q       *queued
}

// outCall records where a call's frames sit in node.out, so that a call
// withdrawn before the writer takes the buffer is cut out and never sent.
type outCall struct {
	start, end int
	size       int
	w          *call
	canceled   bool
}

// node is everything the Client keeps for one remote node: its FIFO, its
// write buffer, its pending calls and its state machine.
type node struct {
	c    *Client
	name string
	log  logr.Logger
	m    nodeMetrics

	kick chan struct{} // wakes the manager: registry change, connection lost

	mu       sync.Mutex
	state    State
	failErr  error // non-nil: Send and Call fail at once with it
	reason   string
	lastErr  error // last connection error, for messages of calls that time out queued
	fifo     fifo  // messages waiting for the node to be ready
	sessions wire.SessionCounter
	conn     *nodeConn     // the confirmed connection, nil when not ready
	space    chan struct{} // closed when queue room frees; nil if nobody waits
	qMsgs    int           // messages in fifo and out
	qBytes   int           // their payload bytes
	signaled bool          // the writer has been woken (or is busy) for out

	// out holds encoded frames for the writer; outGen numbers it. Calls in
	// it have gen == outGen; a taken buffer's calls are in flight.
	out         []byte
	outGen      uint64
	outCalls    []outCall
	outMsgs     int
	outSends    int
	outBytes    int
	outCanceled int

	stopWatch func()
	draining  map[*nodeConn]struct{} // old connections finishing their calls after a move

	pmu     sync.Mutex
	pending map[uint32]*call // calls encoded or written, by session

	// Manager-only state.
	redial redial
	mine   *nodeConn // the connection the manager made last
}

func newNode(c *Client, name string) *node {
	return &node{
		c:       c,
		name:    name,
		log:     c.log.WithValues("node", name),
		m:       c.metrics.forNode(name),
		kick:    make(chan struct{}, 1),
		outGen:  1,
		pending: make(map[uint32]*call),
	}
}

func (n *node) notify() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// submit admits one message: straight into the write buffer when the node
// is ready (the FIFO is then empty), else into the FIFO.
func (n *node) submit(ctx context.Context, addr uint32, name string, push bool, payload []byte, w *call) error {
	size := len(payload)
	n.mu.Lock()
	if n.state == StateIdle {
		n.startLocked()
	}
	for {
		if n.failErr != nil && !n.recheckLocked() {
			err := n.failErr
			n.mu.Unlock()
			return err
		}
		if n.qMsgs == 0 || (n.qMsgs < n.c.opts.queueLimit && n.qBytes+size <= n.c.opts.queueBytes) {
			break
		}
		if n.c.opts.failWhenFull {
			err := newNodeError(ErrQueueFull, nil,
				"skycall: queue for node %q is full (%d messages, %d bytes; limits %d and %d, state %s); slow down, raise WithQueueLimit/WithQueueBytes, or drop WithQueueFullError to wait for room",
				n.name, n.qMsgs, n.qBytes, n.c.opts.queueLimit, n.c.opts.queueBytes, n.state)
			n.mu.Unlock()
			return err
		}
		if n.space == nil {
			n.space = make(chan struct{})
		}
		space := n.space
		n.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return fmt.Errorf("skycall: waiting for room in the full queue of node %q (not sent): %w", n.name, ctx.Err())
		}
		n.mu.Lock()
	}
	n.qMsgs++
	n.qBytes += size
	if n.state == StateReady {
		n.appendLocked(addr, name, push, payload, w, nil)
		if !n.signaled {
			n.signaled = true
			select {
			case n.conn.wake <- struct{}{}:
			default:
			}
		}
		n.mu.Unlock()
		return nil
	}
	q := &queued{addr: addr, name: name, push: push, payload: append([]byte(nil), payload...), size: size, call: w, enq: time.Now()}
	if w != nil {
		w.where, w.q = whereFIFO, q
	}
	n.fifo.push(q)
	n.mu.Unlock()
	return nil
}

// recheckLocked asks the registry again before failing a message fast, so
// that a node brought back up is usable at once rather than when the
// manager catches up. It reports whether the failure no longer holds.
func (n *node) recheckLocked() bool {
	if n.state == StateClosed || n.state == StateIdle {
		return false
	}
	e, err := n.c.reg.Lookup(n.name)
	switch {
	case err != nil:
		n.failErr = n.registryError(err)
		return false
	case e.State == registry.Down:
		return false
	case e.State == registry.Absent && e.NoWait && n.conn == nil:
		return false
	}
	n.failErr = nil
	if n.state == StateDown {
		n.setStateLocked(StateResolving)
	}
	n.notify()
	return true
}

// appendLocked encodes one message into out. If pmuHeld, the caller holds
// n.pmu; otherwise it is taken for a call.
func (n *node) appendLocked(addr uint32, name string, push bool, payload []byte, w *call, pmuHeld *bool) {
	s := n.sessions.Next()
	start := len(n.out)
	n.out = appendRequest(n.out, addr, name, s, push, payload)
	n.outMsgs++
	n.outBytes += len(payload)
	if w == nil {
		n.outSends++
		return
	}
	w.session, w.gen, w.where, w.outIdx, w.q = s, n.outGen, whereOut, len(n.outCalls), nil
	n.outCalls = append(n.outCalls, outCall{start: start, end: len(n.out), size: len(payload), w: w})
	if pmuHeld == nil {
		n.pmu.Lock()
		n.pending[s] = w
		n.pmu.Unlock()
	} else {
		n.pending[s] = w
	}
}

// startLocked starts following the node: first use.
func (n *node) startLocked() {
	c := n.c
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if closed {
		n.state, n.failErr = StateClosed, ErrClosed
		return
	}
	n.state = StateResolving
	n.stopWatch = c.reg.Watch(n.name, n.notify)
	// Decide fail-fast cases now, so that the very first Send to a down or
	// unknown no-wait node fails instead of being queued.
	e, err := c.reg.Lookup(n.name)
	switch {
	case err != nil:
		n.failErr = n.registryError(err)
	case e.State == registry.Down:
		n.failErr, n.state = n.downError(e), StateDown
	case e.State == registry.Absent && e.NoWait:
		n.failErr = n.unknownError()
	}
	n.log.V(1).Info("Node first used", "registry", e.State.String(), "address", e.Address)
	go n.run()
}

func (n *node) registryError(err error) error {
	return newNodeError(ErrRegistry, err, "skycall: node %q: the registry cannot answer: %v", n.name, err)
}

func (n *node) downError(e registry.Entry) error {
	why := ""
	if e.Reason != "" {
		why = " (" + e.Reason + ")"
	}
	return newNodeError(ErrNodeDown, nil,
		"skycall: node %q is marked down in the registry%s; messages to it fail until it is brought back up", n.name, why)
}

func (n *node) unknownError() error {
	return newNodeError(ErrUnknownNode, nil,
		"skycall: node %q is not in the registry, which is no-wait (__nowaiting); add the node, or turn no-wait off to wait for it", n.name)
}

func (n *node) tooLarge(size int) error {
	return newNodeError(ErrMessageTooLarge, nil,
		"skycall: message to node %q is %d bytes, over the %d-byte limit; split it or raise WithMaxMessageSize (the receiver must accept it too)",
		n.name, size, n.c.opts.maxMessageSize)
}

// ctxError explains a Call whose ctx ended.
func (n *node) ctxError(err error, addr uint32, name string, written bool) error {
	target := name
	if target == "" {
		target = handleAddress(addr)
	}
	if written {
		return fmt.Errorf("skycall: call to node %q service %s: %w (the request was sent; its reply will be discarded)", n.name, target, err)
	}
	n.mu.Lock()
	st, reason, last := n.state, n.reason, n.lastErr
	n.mu.Unlock()
	detail := "node " + st.String()
	if reason != "" && st != StateReady {
		detail += ": " + reason
	}
	if last != nil && st != StateReady {
		detail += "; last connection error: " + last.Error()
	}
	return &nodeError{kind: err, cause: last, msg: fmt.Sprintf(
		"skycall: call to node %q service %s: %v while queued (%s); it was not sent", n.name, target, err, detail)}
}

// withdraw takes back a call whose caller gave up. owned reports whether
// the caller may reuse w (no delivery will come); written whether the
// request had left the Client.
func (n *node) withdraw(w *call) (owned, written bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.withdrawLocked(w)
}

func (n *node) withdrawLocked(w *call) (owned, written bool) {
	switch {
	case w.where == whereFIFO:
		n.fifo.cancel(w.q)
		n.dequeuedLocked(1, w.q.size)
		w.where, w.q = whereNone, nil
		return true, false
	case w.where == whereOut && w.gen == n.outGen:
		oc := &n.outCalls[w.outIdx]
		oc.canceled = true
		n.outCanceled++
		n.outMsgs--
		n.outBytes -= oc.size
		n.dequeuedLocked(1, oc.size)
		n.pmu.Lock()
		delete(n.pending, w.session)
		n.pmu.Unlock()
		w.where = whereNone
		return true, false
	case w.where == whereOut:
		n.pmu.Lock()
		if n.pending[w.session] == w {
			delete(n.pending, w.session)
			owned = true
			w.where = whereNone
		}
		n.pmu.Unlock()
		return owned, true
	}
	return false, false
}

// dequeuedLocked releases queue room and wakes those waiting for it.
func (n *node) dequeuedLocked(msgs, bytes int) {
	n.qMsgs -= msgs
	n.qBytes -= bytes
	if n.space != nil {
		close(n.space)
		n.space = nil
	}
}

// expire fails the calls whose default timeout has passed.
func (n *node) expire(epoch uint64) {
	n.mu.Lock()
	if n.qMsgs == 0 && n.conn == nil && n.fifo.n == 0 {
		n.pmu.Lock()
		empty := len(n.pending) == 0
		n.pmu.Unlock()
		if empty {
			n.mu.Unlock()
			return
		}
	}
	var cands []*call
	n.fifo.each(func(q *queued) {
		if q.call != nil && q.call.deadline != 0 && epoch >= q.call.deadline {
			cands = append(cands, q.call)
		}
	})
	n.pmu.Lock()
	for _, w := range n.pending {
		if w.deadline != 0 && epoch >= w.deadline {
			cands = append(cands, w)
		}
	}
	n.pmu.Unlock()
	var expired []*call
	var written []bool
	for _, w := range cands {
		if owned, wr := n.withdrawLocked(w); owned {
			expired = append(expired, w)
			written = append(written, wr)
		}
	}
	n.mu.Unlock()
	for i, w := range expired {
		n.deliverTimeout(w, written[i])
	}
}

func (n *node) deliverTimeout(w *call, written bool) {
	target := w.name
	if target == "" {
		target = handleAddress(w.addr)
	}
	what := "while queued; it was not sent"
	if written {
		what = "after it was sent; a late reply will be discarded"
	}
	w.err = &timeoutError{msg: fmt.Sprintf(
		"skycall: call to node %q service %s got no reply within the default call timeout %v (%s); give ctx a deadline or change WithCallTimeout",
		n.name, target, n.c.opts.callTimeout, what)}
	w.done <- struct{}{}
}

// timeoutError is the default call timeout: it is a context.DeadlineExceeded.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }
func (e *timeoutError) Timeout() bool { return true }

// failQueuedLocked fails every message not yet written: the FIFO, and the
// write buffer unless a connection is about to write it. Calls get err;
// Sends are counted as dropped with reason. Returns the calls to deliver.
func (n *node) failQueuedLocked(err error, reason string, withOut bool) []*call {
	var calls []*call
	sends, msgs, bytes := 0, 0, 0
	for q := n.fifo.pop(); q != nil; q = n.fifo.pop() {
		if q.canceled {
			continue
		}
		msgs++
		bytes += q.size
		if q.call == nil {
			sends++
			continue
		}
		q.call.where, q.call.q, q.call.err = whereNone, nil, err
		calls = append(calls, q.call)
	}
	if withOut && n.outMsgs > 0 {
		n.pmu.Lock()
		for i := range n.outCalls {
			oc := &n.outCalls[i]
			if oc.canceled {
				continue
			}
			delete(n.pending, oc.w.session)
			oc.w.where, oc.w.err = whereNone, err
			calls = append(calls, oc.w)
		}
		n.pmu.Unlock()
		sends += n.outSends
		msgs += n.outMsgs
		bytes += n.outBytes
		n.resetOutLocked()
	}
	if msgs > 0 {
		n.dequeuedLocked(msgs, bytes)
	}
	if sends > 0 {
		n.c.metrics.dropped.WithLabelValues(n.name, reason).Add(float64(sends))
		n.log.Info("Dropped queued sends", "count", sends, "reason", reason, "error", err.Error())
	}
	return calls
}

func (n *node) resetOutLocked() {
	clear(n.outCalls)
	n.outCalls = n.outCalls[:0]
	n.out = n.out[:0]
	n.outGen++
	n.outMsgs, n.outSends, n.outBytes, n.outCanceled = 0, 0, 0, 0
}

// failPendingLocked fails the calls in flight, on conn c (gen in its range)
// or all of them (c nil), with err.
func (n *node) failPendingLocked(c *nodeConn, err error) []*call {
	var calls []*call
	n.pmu.Lock()
	for s, w := range n.pending {
		if w.gen == n.outGen {
			continue // still in out: not written
		}
		if c != nil && (w.gen < c.firstGen || w.gen > c.lastGen) {
			continue
		}
		delete(n.pending, s)
		w.where, w.err = whereNone, err
		calls = append(calls, w)
	}
	n.pmu.Unlock()
	return calls
}

func deliver(calls []*call) {
	for _, w := range calls {
		w.done <- struct{}{}
	}
}

func (n *node) setState(s State) {
	n.mu.Lock()
	n.setStateLocked(s)
	n.mu.Unlock()
}

func (n *node) setStateLocked(s State) {
	if n.state != s && n.state != StateClosed {
		n.log.V(1).Info("State", "from", n.state.String(), "to", s.String())
		n.state = s
	}
}

// run is the node's manager: a level-based loop that looks the node up,
// connects, confirms, backs off and reconnects, until the Client closes.
func (n *node) run() {
	defer n.c.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-n.c.done:
			n.shutdown()
			return
		default:
		}
		if d := n.step(); d > 0 {
			timer.Reset(d)
		}
		select {
		case <-n.c.done:
			n.shutdown()
			return
		case <-n.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// step brings the node one step towards the registry's entry. It returns
// how long to wait before stepping again without news (0: until news).
func (n *node) step() time.Duration {
	e, err := n.c.reg.Lookup(n.name)
	n.mu.Lock()
	cur := n.conn
	if n.mine != nil && cur != n.mine {
		// The connection the manager made was lost: back off if it did not
		// last, else reconnect at once.
		if time.Since(n.mine.readyAt) < time.Second {
			n.redial.failed(time.Now(), n.c.opts.backoffBase, n.c.opts.backoffMax, rand.Float64())
		} else {
			n.redial.reset()
		}
		n.mine = nil
	}
	if n.state == StateClosed {
		n.mu.Unlock()
		return 0
	}
	switch {
	case err != nil:
		rerr := n.registryError(err)
		first := n.failErr == nil || n.failErr.Error() != rerr.Error()
		n.failErr = rerr
		calls := n.failQueuedLocked(rerr, "registry_error", cur == nil)
		if cur == nil {
			n.setStateLocked(StateResolving)
		}
		n.mu.Unlock()
		deliver(calls)
		if first {
			n.log.Error(err, "Registry cannot answer; failing messages until it can")
		}
		return 0

	case e.State == registry.Down:
		derr := n.downError(e)
		n.failErr = derr
		calls, conns := n.failEverythingLocked(derr, "node_down", newNodeError(ErrNodeDown, nil,
			"skycall: node %q was marked down while the call was in flight; the request may or may not have been processed", n.name))
		was := n.state
		n.setStateLocked(StateDown)
		n.mine = nil
		n.mu.Unlock()
		closeConns(conns)
		deliver(calls)
		if was != StateDown {
			n.log.Info("Node down in the registry; closing its connection", "reason", e.Reason)
		}
		n.redial.reset()
		return 0

	case e.State == registry.Ready:
		n.failErr, n.reason = nil, ""
		if n.state == StateDown {
			n.setStateLocked(StateResolving)
		}
		if cur != nil && cur.addr == e.Address {
			n.mu.Unlock()
			return 0
		}
		n.mu.Unlock()
		if cur != nil {
			n.log.Info("Node moved; reconnecting", "from", cur.addr, "to", e.Address)
			n.startDrain(cur)
			n.mine = nil
			n.redial.reset()
		}
		if e.Address != n.redial.lastAddr {
			n.redial.reset()
		}
		if wait := n.redial.wait(time.Now()); wait > 0 {
			n.setState(StateBackoff)
			return wait
		}
		if err := n.connect(e.Address); err != nil {
			d := n.redial.failed(time.Now(), n.c.opts.backoffBase, n.c.opts.backoffMax, rand.Float64())
			n.mu.Lock()
			n.lastErr = err
			n.setStateLocked(StateBackoff)
			n.mu.Unlock()
			n.log.Info("Connecting failed; backing off", "address", e.Address, "attempt", n.redial.attempt, "retryIn", d.String(), "error", err.Error())
			return d
		}
		return 0

	default: // Unknown, Absent, NotReady
		if e.State == registry.Absent && e.NoWait && cur == nil {
			uerr := n.unknownError()
			n.failErr = uerr
			calls := n.failQueuedLocked(uerr, "unknown_node", true)
			n.setStateLocked(StateResolving)
			n.mu.Unlock()
			deliver(calls)
			return 0
		}
		n.failErr = nil
		n.reason = e.State.String()
		if e.Reason != "" {
			n.reason += ": " + e.Reason
		}
		if cur == nil {
			n.setStateLocked(StateResolving)
		}
		n.mu.Unlock()
		if cur != nil {
			// skynet's reload merges: a node that leaves the config keeps
			// the sender it has. The connection stays until it breaks.
			n.log.V(1).Info("Node no longer ready in the registry; keeping its connection", "registry", e.State.String(), "reason", e.Reason)
		}
		return 0
	}
}

// failEverythingLocked fails the queued messages with queued (counting
// dropped Sends under reason) and the in-flight calls with inflight, and
// detaches the node's connections, which the caller closes with closeConns
// once it has unlocked.
func (n *node) failEverythingLocked(queued error, reason string, inflight error) ([]*call, []*nodeConn) {
	calls := n.failQueuedLocked(queued, reason, true)
	conns := n.closeDrainingLocked()
	if n.conn != nil {
		conns = append(conns, n.conn)
	}
	n.conn = nil
	calls = append(calls, n.failPendingLocked(nil, inflight)...)
	return calls, conns
}

func closeConns(conns []*nodeConn) {
	for _, c := range conns {
		c.close()
	}
}

// shutdown fails everything of the node when the Client closes.
func (n *node) shutdown() {
	n.mu.Lock()
	n.state = StateClosed
	n.failErr = ErrClosed
	calls, conns := n.failEverythingLocked(
		newNodeError(ErrClosed, nil, "skycall: client closed before the message to node %q was sent", n.name), "closed",
		newNodeError(ErrClosed, nil, "skycall: client closed while the call to node %q was in flight; the request may or may not have been processed", n.name))
	if n.space != nil {
		close(n.space)
		n.space = nil
	}
	n.mu.Unlock()
	closeConns(conns)
	if n.stopWatch != nil {
		n.stopWatch()
	}
	deliver(calls)
}

// connLost handles the end of connection c: its in-flight calls fail with
// ErrConnectionLost; what was not written stays queued for the next one.
// lostSends is the number of Sends in a batch whose write failed.
func (n *node) connLost(c *nodeConn, cause error, lostSends int) {
	if lostSends > 0 {
		n.c.metrics.dropped.WithLabelValues(n.name, "connection_lost").Add(float64(lostSends))
	}
	n.mu.Lock()
	current := n.conn == c
	_, draining := n.draining[c]
	if !current && !draining {
		// Already taken down (node down, Client closed): its calls failed.
		n.mu.Unlock()
		c.close()
		return
	}
	delete(n.draining, c)
	if c.drainTimer != nil {
		c.drainTimer.Stop()
	}
	if current {
		n.conn = nil
		n.setStateLocked(StateBackoff)
		n.lastErr = cause
	}
	lerr := newNodeError(ErrConnectionLost, cause,
		"skycall: connection to node %q (%s) lost while the call was in flight: %v; the request may or may not have been processed",
		n.name, c.addr, cause)
	calls := n.failPendingLocked(c, lerr)
	n.mu.Unlock()
	c.close()
	deliver(calls)
	if current || len(calls) > 0 {
		n.log.Info("Connection lost", "address", c.addr, "failedCalls", len(calls), "lostSends", lostSends, "error", cause.Error())
	}
	if current {
		n.notify()
	}
}

// startDrain retires c after the node moved: nothing more is written to
// it, and it closes once the calls written on it have their replies (or
// after the call timeout), so that a move fails no call.
func (n *node) startDrain(c *nodeConn) {
	n.mu.Lock()
	if n.conn != c {
		n.mu.Unlock()
		return
	}
	n.conn = nil
	n.setStateLocked(StateConnecting)
	if n.draining == nil {
		n.draining = make(map[*nodeConn]struct{})
	}
	n.draining[c] = struct{}{}
	c.draining.Store(true)
	close(c.retired)
	d := n.c.opts.callTimeout
	if d <= 0 {
		d = time.Minute
	}
	c.drainTimer = time.AfterFunc(d, func() {
		n.connLost(c, fmt.Errorf("no reply within %v after node %q moved away from %s", d, n.name, c.addr), 0)
	})
	n.mu.Unlock()
	n.endDrainIfDone(c)
}

// endDrainIfDone closes a draining connection with no call left on it.
func (n *node) endDrainIfDone(c *nodeConn) {
	n.mu.Lock()
	if _, ok := n.draining[c]; !ok {
		n.mu.Unlock()
		return
	}
	n.pmu.Lock()
	for _, w := range n.pending {
		if w.gen >= c.firstGen && w.gen <= c.lastGen && w.gen != n.outGen {
			n.pmu.Unlock()
			n.mu.Unlock()
			return
		}
	}
	n.pmu.Unlock()
	delete(n.draining, c)
	c.drainTimer.Stop()
	n.mu.Unlock()
	n.log.V(1).Info("Old connection drained", "address", c.addr)
	c.close()
}

// closeDrainingLocked closes every draining connection; the caller has
// failed their calls.
func (n *node) closeDrainingLocked() []*nodeConn {
	var out []*nodeConn
	for c := range n.draining {
		c.drainTimer.Stop()
		out = append(out, c)
	}
	clear(n.draining)
	return out
}

func (n *node) countCall(result string) {
	n.c.metrics.calls.WithLabelValues(n.name, result).Inc()
}

// countCallErr counts a failed call by its result.
func (n *node) countCallErr(err error) {
	var re *RemoteError
	var te *timeoutError
	switch {
	case errors.As(err, &re):
		n.m.callsRemote.Inc()
		return
	case errors.As(err, &te):
		n.countCall(resultTimeout)
	case errors.Is(err, ErrConnectionLost):
		n.countCall(resultConnectionLost)
	case errors.Is(err, ErrNodeDown):
		n.countCall(resultNodeDown)
	case errors.Is(err, ErrUnknownNode):
		n.countCall(resultUnknownNode)
	case errors.Is(err, ErrQueueFull):
		n.countCall(resultQueueFull)
	case errors.Is(err, ErrClosed):
		n.countCall(resultClosed)
	case errors.Is(err, ErrRegistry):
		n.countCall(resultRegistry)
	case errors.Is(err, context.DeadlineExceeded):
		n.countCall(resultDeadline)
	case errors.Is(err, context.Canceled):
		n.countCall(resultCanceled)
	}
}
