package sender

import (
	"errors"
	"time"
)

// errForgotten is what submit returns for a node forgotten while idle: the
// caller takes the name's new node and submits again. It never reaches a
// user.
var errForgotten = errors.New("skycall: internal: node forgotten")

// idleTicks is how many idle checks make one idle timeout: a node is
// forgotten between one and 1 + 1/idleTicks idle timeouts after its last use
// (a check later if a probe must first prove the pushes of its connection).
const idleTicks = 4

// forgetIdle forgets the nodes idle for the whole idle timeout. The Client's
// sweeper calls it every 1/idleTicks of the timeout.
func (c *Client) forgetIdle(now time.Time) {
	c.idleSweeps.Add(1)
	c.nodes.Range(func(_, v any) bool {
		n := v.(*node)
		if n.idleFor(now) >= c.opts.nodeIdle {
			c.forget(n, now)
		}
		return true
	})
}

// idleClock tracks how long a node has gone unused. Guarded by node.mu.
type idleClock struct {
	used  bool      // a message was submitted since the last check
	since time.Time // when a check last saw the node in use; zero: never checked
}

// touch records a message. It writes only on the first message since the
// last check, so that a hot node's submit path does not dirty the cache
// line at every message.
func (k *idleClock) touch() {
	if !k.used {
		k.used = true
	}
}

// check returns how long the node has been idle as of now, given whether it
// is busy (something queued or in flight). A node used since the previous
// check, or checked for the first time, has been idle for 0.
func (k *idleClock) check(busy bool, now time.Time) time.Duration {
	busy = busy || k.used
	k.used = false
	if busy || k.since.IsZero() {
		k.since = now
		return 0
	}
	return now.Sub(k.since)
}

// idleFor reports how long the node has been idle as of now: nothing
// queued or in the outbox, no call in flight, no old connection draining,
// its writer not busy, and no message submitted since the previous check.
func (n *node) idleFor(now time.Time) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.idleForLocked(now)
}

func (n *node) idleForLocked(now time.Time) time.Duration {
	busy := n.quota.msgs > 0 || len(n.draining) > 0 || (n.conn != nil && n.signaled) || n.inflight.len() > 0
	return n.idle.check(busy, now)
}

// forget drops n if it is still idle and its connection has no push left to
// prove (else it has the watchdog probe): it is taken out of the Client's
// nodes and its metric series are deleted, under nodesMu so that no new
// node of the same name is made meanwhile; then its connection is closed
// and its manager goroutine stops its registry watch and ends. A message
// submitted to n afterwards gets errForgotten and goes to a new node.
func (c *Client) forget(n *node, now time.Time) {
	c.nodesMu.Lock()
	n.mu.Lock()
	if n.forgotten || n.state == StateClosed || n.idleForLocked(now) < c.opts.nodeIdle {
		n.mu.Unlock()
		c.nodesMu.Unlock()
		return
	}
	conn := n.conn
	if conn != nil {
		if _, ok := conn.lastUnconfirmed(); ok {
			// Prove its pushes before closing it: the watchdog probes now,
			// and a later sweep forgets the node once the reply has come, or
			// once the watchdog has given a silent peer up and counted them.
			conn.probeSoon()
			n.mu.Unlock()
			c.nodesMu.Unlock()
			return
		}
	}
	n.forgotten = true
	n.conn = nil
	n.mu.Unlock()
	c.nodes.CompareAndDelete(n.name, n)
	c.metrics.forget(n.name)
	c.nodesMu.Unlock()

	if conn != nil {
		conn.close()
	}
	n.notify() // its manager, if started, stops the watch and returns
	n.log.V(1).Info("Node idle; forgotten", "idleTimeout", c.opts.nodeIdle.String())
}

// forget deletes every series of the node name, by exact labels: a partial
// match would scan every series of every node, under nodesMu. The gauges
// (state, queue) go with the node, since they are collected from the nodes.
func (m *clientMetrics) forget(name string) {
	for _, r := range callResults {
		m.calls.DeleteLabelValues(name, r)
	}
	for _, r := range dropReasons {
		m.dropped.DeleteLabelValues(name, r)
	}
	m.queueWait.DeleteLabelValues(name)
	for _, r := range callResults {
		m.callTime.DeleteLabelValues(name, r)
	}
	m.written.DeleteLabelValues(name)
	m.writtenBytes.DeleteLabelValues(name)
	m.readBytes.DeleteLabelValues(name)
	m.reconnects.DeleteLabelValues(name)
}
