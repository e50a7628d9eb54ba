package sender

import (
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
	// StateIdle: never used, or forgotten after WithNodeIdleTimeout;
	// nothing resolved or connected.
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

// node is the Client's state machine for one remote node: it admits
// messages (into the FIFO while the node is not ready, into the outbox once
// it is), follows the node's registry entry, and moves between the States.
// The parts it coordinates each have their own type and file: admission
// and the quota (message.go), the FIFO (queue.go), the outbox
// (outbox.go), the in-flight calls (reader.go), the reconnect policy
// (backoff.go), the connection (conn.go; dial.go makes it) and the old
// connections draining after a move (drain.go).
//
// Lock order: Client.nodesMu before mu before the leaves Client.mu,
// inflight.mu and nodeConn.ackMu (conn.go).
type node struct {
	c    *Client
	name string
	log  logr.Logger
	m    nodeMetrics

	kick chan struct{} // wakes the manager: registry change, connection lost

	mu       sync.Mutex
	state    State // written only by setStateLocked
	failErr  error // non-nil: Send and Call fail at once with it
	reason   string
	lastErr  error // last connection error, for messages of calls that time out queued
	fifo     fifo  // messages waiting for the node to be ready
	quota    quota // what is in fifo and out
	sessions wire.SessionCounter
	seq      uint64    // write ordinal of the last message appended to the outbox (acks.go)
	conn     *nodeConn // the confirmed connection, nil when not ready
	out      outbox    // frames for conn's writer
	signaled bool      // conn's writer has been woken (or is busy) for out
	draining drainSet  // old connections finishing their calls after a move

	idle      idleClock // how long the node has gone unused (idle.go)
	forgotten bool      // final: the Client dropped the node while idle

	inflight *inflight // calls encoded or written, by session; its own lock

	// Owned by the manager goroutine (run).
	stopWatch func()
	redial    redial
	mine      *nodeConn // the connection the manager made last
}

func newNode(c *Client, name string) *node {
	return &node{
		c:        c,
		name:     name,
		log:      c.log.WithValues("node", name),
		m:        c.metrics.forNode(name),
		kick:     make(chan struct{}, 1),
		out:      newOutbox(),
		inflight: newInflight(),
	}
}

func (n *node) notify() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// setStateLocked is the one place the node's state changes, as grpc-go's
// updateConnectivityState: it logs the transition, and the state metric
// (skycall_sender_node_state, collected from n.state) follows. Closed is
// final.
func (n *node) setStateLocked(s State, why string) {
	from := n.state
	if from == s || from == StateClosed {
		return
	}
	n.state = s
	n.log.V(1).Info("State", "from", from.String(), "to", s.String(), "why", why)
}

func (n *node) setState(s State, why string) {
	n.mu.Lock()
	n.setStateLocked(s, why)
	n.mu.Unlock()
}

// failFast is the one decision whether messages to the node fail at once,
// from the registry's answer: a registry that cannot answer, a node marked
// down, or a node absent from a no-wait registry while no connection to it
// remains. It returns the error they fail with, or nil to queue them.
func (n *node) failFast(e registry.Entry, err error, connected bool) error {
	switch {
	case err != nil:
		return n.registryError(err)
	case e.State == registry.Down:
		return n.downError(e)
	case e.State == registry.Absent && e.NoWait && !connected:
		return n.unknownError()
	}
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
	if ferr := n.failFast(e, err, n.conn != nil); ferr != nil {
		n.failErr = ferr
		return false
	}
	n.failErr = nil
	if n.state == StateDown {
		n.setStateLocked(StateResolving, "registry: "+e.State.String())
	}
	n.notify()
	return true
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
		n.failErr = ErrClosed
		n.setStateLocked(StateClosed, "client closed")
		return
	}
	n.setStateLocked(StateResolving, "first use")
	n.stopWatch = c.reg.Watch(n.name, n.notify)
	// Decide fail-fast cases now, so that the very first Send to a down or
	// unknown no-wait node fails instead of being queued.
	e, err := c.reg.Lookup(n.name)
	n.failErr = n.failFast(e, err, false)
	if err == nil && e.State == registry.Down {
		n.setStateLocked(StateDown, "registry: down")
	}
	n.log.V(1).Info("Node first used", "registry", e.State.String(), "address", e.Address)
	go n.run()
}

// withdraw takes back a call whose caller gave up. owned reports whether
// the caller may reuse w (no delivery will come); written whether the
// request had left the Client.
func (n *node) withdraw(w *call) (owned, written bool) {
	n.mu.Lock()
	owned, written = n.withdrawLocked(w)
	drains := owned && written && len(n.draining) > 0
	n.mu.Unlock()
	if drains {
		n.endDrains() // a drain may have waited for w alone
	}
	return owned, written
}

func (n *node) withdrawLocked(w *call) (owned, written bool) {
	switch {
	case w.where == whereFIFO:
		n.fifo.cancel(w.q)
		n.quota.release(1, w.q.size)
		w.where, w.q = whereNone, nil
		return true, false
	case w.where == whereOut && n.out.holds(w):
		n.quota.release(1, n.out.withdraw(w))
		n.inflight.remove(w)
		w.where = whereNone
		return true, false
	case w.where == whereOut:
		if n.inflight.remove(w) {
			w.where = whereNone
			return true, true
		}
		return false, true
	}
	return false, false
}

// expire fails the calls whose default timeout has passed by now (see
// Client.now).
func (n *node) expire(now uint64) {
	due := func(w *call) bool { return w.deadline != 0 && now >= w.deadline }
	n.mu.Lock()
	if n.quota.msgs == 0 && n.conn == nil && n.fifo.n == 0 && n.inflight.len() == 0 {
		n.mu.Unlock()
		return
	}
	var cands []*call
	n.fifo.each(func(q *queued) {
		if q.call != nil && due(q.call) {
			cands = append(cands, q.call)
		}
	})
	cands = n.inflight.appendIf(cands, due)
	var expired []*call
	var written []bool
	drains := false
	for _, w := range cands {
		if owned, wr := n.withdrawLocked(w); owned {
			expired = append(expired, w)
			written = append(written, wr)
			drains = drains || wr && len(n.draining) > 0
		}
	}
	n.mu.Unlock()
	for i, w := range expired {
		n.deliverTimeout(w, written[i])
	}
	if drains {
		n.endDrains() // a drain may have waited for these calls alone
	}
}

// failQueuedLocked fails every message not yet written: the FIFO, and the
// outbox unless a connection is about to write it. Calls get err; Sends are
// counted as dropped with reason. Returns the calls to deliver.
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
	if withOut && n.out.msgs > 0 {
		first := len(calls)
		var m, s, b int
		calls, m, s, b = n.out.drop(calls)
		for _, w := range calls[first:] {
			n.inflight.remove(w)
			w.where, w.err = whereNone, err
		}
		msgs, sends, bytes = msgs+m, sends+s, bytes+b
	}
	if msgs > 0 {
		n.quota.release(msgs, bytes)
	}
	if sends > 0 {
		n.c.metrics.dropped.WithLabelValues(n.name, reason).Add(float64(sends))
		n.log.Info("Dropped queued sends", "count", sends, "reason", reason, "error", err.Error())
	}
	return calls
}

// failInflightLocked fails the calls written on conn c (gen in its range)
// or on any connection (c nil), with err. Calls still in the outbox are not
// written and stay.
func (n *node) failInflightLocked(c *nodeConn, err error) []*call {
	calls := n.inflight.takeIf(nil, func(w *call) bool {
		return !n.out.holds(w) && (c == nil || c.wrote(w))
	})
	for _, w := range calls {
		w.where, w.err = whereNone, err
	}
	return calls
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
		if n.isForgotten() {
			n.stopWatch()
			return
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

func (n *node) isForgotten() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.forgotten
}

// step brings the node one step towards the registry's entry. It returns
// how long to wait before stepping again without news (0: until news).
func (n *node) step() time.Duration {
	o := &n.c.opts
	e, err := n.c.reg.Lookup(n.name)
	n.mu.Lock()
	cur := n.conn
	if n.mine != nil && cur != n.mine {
		// The connection the manager made was lost: back off if it did not
		// last, else reconnect at once.
		if time.Since(n.mine.readyAt) < time.Second {
			n.redial.failed(time.Now(), o.backoffBase, o.backoffMax, rand.Float64())
		} else {
			n.redial.reset()
		}
		n.mine = nil
	}
	if n.state == StateClosed {
		n.mu.Unlock()
		return 0
	}
	ferr := n.failFast(e, err, cur != nil)
	switch {
	case err != nil:
		first := n.failErr == nil || n.failErr.Error() != ferr.Error()
		n.failErr = ferr
		calls := n.failQueuedLocked(ferr, dropRegistry, cur == nil)
		if cur == nil {
			n.setStateLocked(StateResolving, "registry error")
		}
		n.mu.Unlock()
		deliver(calls)
		if first {
			n.log.Error(err, "Registry cannot answer; failing messages until it can")
		}
		return 0

	case e.State == registry.Down:
		n.failErr = ferr
		calls, conns := n.failEverythingLocked(ferr, dropNodeDown, newNodeError(ErrNodeDown, nil,
			"skycall: node %q was marked down while the call was in flight; the request may or may not have been processed", n.name))
		was := n.state
		n.setStateLocked(StateDown, "registry: down")
		n.mine = nil
		n.mu.Unlock()
		closeConns(conns)
		deliver(calls)
		if was != StateDown {
			n.log.Info("Node down in the registry; closing its connection", "reason", e.Reason)
		}
		n.redial.reset()
		return 0

	case ferr != nil: // absent from a no-wait registry, not connected
		n.failErr = ferr
		calls := n.failQueuedLocked(ferr, dropUnknownNode, true)
		n.setStateLocked(StateResolving, "registry: absent, no-wait")
		n.mu.Unlock()
		deliver(calls)
		return 0

	case e.State == registry.Ready:
		n.failErr, n.reason = nil, ""
		if n.state == StateDown {
			n.setStateLocked(StateResolving, "registry: ready")
		}
		if cur != nil && cur.addr == e.Address && sameIncarnation(cur.incarnation, e.Incarnation) {
			n.mu.Unlock()
			return 0
		}
		n.mu.Unlock()
		if cur != nil {
			if cur.addr == e.Address {
				// A new process at the same address (a replaced pod that
				// got the old IP): a new node, never the old connection.
				n.log.Info("New incarnation of the node; reconnecting", "address", e.Address, "from", cur.incarnation, "to", e.Incarnation)
				n.startDrain(cur, StateConnecting, "new incarnation "+e.Incarnation)
			} else {
				n.log.Info("Node moved; reconnecting", "from", cur.addr, "to", e.Address)
				n.startDrain(cur, StateConnecting, "node moved to "+e.Address)
			}
			n.mine = nil
			n.redial.reset()
		}
		if e.Address != n.redial.lastAddr {
			n.redial.reset()
		}
		if wait := n.redial.wait(time.Now()); wait > 0 {
			n.setState(StateBackoff, "waiting to redial")
			return wait
		}
		if err := n.connect(e.Address, e.Incarnation); err != nil {
			d := n.redial.failed(time.Now(), o.backoffBase, o.backoffMax, rand.Float64())
			n.mu.Lock()
			n.lastErr = err
			n.setStateLocked(StateBackoff, "connecting failed")
			n.mu.Unlock()
			n.log.Info("Connecting failed; backing off", "address", e.Address, "attempt", n.redial.attempt, "retryIn", d.String(), "error", err.Error())
			return d
		}
		return 0

	case e.State == registry.Draining:
		// The process behind the node is leaving (its pod is
		// terminating) and no replacement is ready. Stop writing to it:
		// new messages wait in the FIFO, in order, for the replacement;
		// the calls already written get their replies, within the call
		// timeout, before the connection closes.
		n.failErr = nil
		n.reason = "draining"
		if e.Reason != "" {
			n.reason += ": " + e.Reason
		}
		if cur == nil {
			n.setStateLocked(StateResolving, "registry: draining")
		}
		n.mu.Unlock()
		if cur != nil {
			n.log.Info("Node draining; holding new messages for its replacement", "address", cur.addr, "reason", e.Reason)
			n.startDrain(cur, StateResolving, "node draining")
			n.mine = nil
			n.redial.reset()
		}
		return 0

	default: // Unknown, Absent (waiting), NotReady
		n.failErr = nil
		n.reason = e.State.String()
		if e.Reason != "" {
			n.reason += ": " + e.Reason
		}
		if cur == nil {
			n.setStateLocked(StateResolving, "registry: "+e.State.String())
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

// sameIncarnation reports whether a connection to incarnation have may
// carry on for a registry entry naming want: yes unless both are known
// and differ (a registry or peer that cannot tell is not a change).
func sameIncarnation(have, want string) bool {
	return have == "" || want == "" || have == want
}

// becomeReady installs c and hands it everything queued, in order, in one
// critical section: nothing submitted later can overtake a queued message.
func (n *node) becomeReady(c *nodeConn) {
	n.mu.Lock()
	if n.state == StateClosed || n.forgotten {
		n.mu.Unlock()
		c.nc.Close()
		return
	}
	c.readyAt = time.Now()
	c.firstGen, c.lastGen = n.out.gen, n.out.gen-1
	n.conn, n.mine, n.lastErr, n.reason = c, c, nil, ""
	n.setStateLocked(StateReady, "confirmed")
	drained := n.handOffFIFOLocked()
	n.signaled = false
	n.mu.Unlock()
	kind := "skycall"
	if c.peer == "" {
		kind = "skynet"
	}
	n.log.Info("Connected", "address", c.addr, "peer", kind, "drained", drained)
	c.start()
}

// failEverythingLocked fails the queued messages with queued (counting
// dropped Sends under reason) and the in-flight calls with inflight, and
// detaches the node's connections, which the caller closes with closeConns
// once it has unlocked.
func (n *node) failEverythingLocked(queued error, reason string, inflight error) ([]*call, []*nodeConn) {
	calls := n.failQueuedLocked(queued, reason, true)
	conns := n.draining.detachAll()
	if n.conn != nil {
		conns = append(conns, n.conn)
	}
	n.conn = nil
	calls = append(calls, n.failInflightLocked(nil, inflight)...)
	return calls, conns
}

func closeConns(conns []*nodeConn) {
	for _, c := range conns {
		c.close()
	}
}

// shutdown fails everything of the node when the Client closes. Its
// connections are drained rather than cut: each proves the pushes written
// on it with a probe before it closes, all within one peer timeout, so that
// a clean shutdown counts none unconfirmed (drain.go).
func (n *node) shutdown() {
	n.mu.Lock()
	n.setStateLocked(StateClosed, "client closed")
	n.failErr = ErrClosed
	calls := n.failQueuedLocked(newNodeError(ErrClosed, nil, "skycall: client closed before the message to node %q was sent", n.name), dropClosed, true)
	calls = append(calls, n.failInflightLocked(nil, newNodeError(ErrClosed, nil,
		"skycall: client closed while the call to node %q was in flight; the request may or may not have been processed", n.name))...)
	if c := n.conn; c != nil {
		n.conn = nil
		c.retire()
		n.draining.add(c)
	}
	conns := n.draining.list()
	for _, c := range conns {
		n.limitDrainLocked(c, n.c.opts.peerTimeout, "the client closed")
	}
	n.quota.wake()
	n.mu.Unlock()
	if n.stopWatch != nil {
		n.stopWatch()
	}
	deliver(calls)
	for _, c := range conns {
		c.interruptRead() // a caller reading its own reply takes its ErrClosed
		n.endDrainIfDone(c)
	}
}

// connLost handles the end of connection c: its in-flight calls fail with
// ErrConnectionLost; what was not written stays queued for the next one.
// lostSends is the number of Sends in a batch whose write failed.
func (n *node) connLost(c *nodeConn, cause error, lostSends int) {
	if lostSends > 0 {
		n.c.metrics.dropped.WithLabelValues(n.name, dropConnectionLost).Add(float64(lostSends))
	}
	n.countUnconfirmed(c, "Pushes written on a lost connection were never confirmed received; they may or may not have arrived", cause.Error())
	n.mu.Lock()
	current := n.conn == c
	draining := n.draining.remove(c)
	if !current && !draining {
		// Already taken down (node down, Client closed): its calls failed.
		n.mu.Unlock()
		c.close()
		return
	}
	if current {
		n.conn = nil
		n.setStateLocked(StateBackoff, "connection lost")
		n.lastErr = cause
	}
	lerr := newNodeError(ErrConnectionLost, cause,
		"skycall: connection to node %q (%s) lost while the call was in flight: %v; the request may or may not have been processed",
		n.name, c.addr, cause)
	calls := n.failInflightLocked(c, lerr)
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

// countUnconfirmed counts and logs the pushes written on c that no reply
// proved received, as c ends (lost, or closed after a drain): their outcome
// is unknown, and nothing ends without a trace.
func (n *node) countUnconfirmed(c *nodeConn, msg, why string) {
	if k := c.unconfirmed(); k > 0 {
		n.c.metrics.dropped.WithLabelValues(n.name, dropUnconfirmed).Add(float64(k))
		n.log.Info(msg, "address", c.addr, "unconfirmed", k, "reason", why)
	}
}
