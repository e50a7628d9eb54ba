package sender

import (
	"fmt"
	"time"
)

// drainSet is a node's old connections finishing the calls written on them
// after the node moved to another address or a new incarnation, began
// draining (its pod is terminating), or the Client closed. Guarded by
// node.mu.
type drainSet map[*nodeConn]struct{}

func (d *drainSet) add(c *nodeConn) {
	if *d == nil {
		*d = make(drainSet)
	}
	(*d)[c] = struct{}{}
}

func (d drainSet) has(c *nodeConn) bool {
	_, ok := d[c]
	return ok
}

// remove takes c out, stopping its drain timer, and reports whether it was
// draining.
func (d drainSet) remove(c *nodeConn) bool {
	if _, ok := d[c]; !ok {
		return false
	}
	delete(d, c)
	c.drain.timer.Stop()
	return true
}

// list returns the connections draining.
func (d drainSet) list() []*nodeConn {
	out := make([]*nodeConn, 0, len(d))
	for c := range d {
		out = append(out, c)
	}
	return out
}

// detachAll takes every connection out, for the caller to close once its
// calls have failed.
func (d drainSet) detachAll() []*nodeConn {
	var out []*nodeConn
	for c := range d {
		c.drain.timer.Stop()
		out = append(out, c)
	}
	clear(d)
	return out
}

// connDrain is the drain of a retired connection. Guarded by node.mu.
type connDrain struct {
	timer   *time.Timer // gives the connection up as lost when the drain lasts too long
	flushed bool        // the writer has written everything it took from the outbox
	probe   *call       // a probe for the writer to write, once endDrainIfDone asks
}

// startDrain retires c: nothing more is written to it, and it closes once
// the calls written on it have their replies (or after the call timeout)
// and a probe has proven the pushes written on it, so that a move or a
// drain fails no call that answers in time and counts no push that
// arrived. Messages submitted from now on wait in the FIFO, in order, for
// the next connection. next is the state the node goes to (Connecting
// after a move, Resolving while the registry has no ready address) and why
// says why (for the log and the drain timeout's error).
func (n *node) startDrain(c *nodeConn, next State, why string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != c {
		return
	}
	n.conn = nil
	n.setStateLocked(next, why)
	d := n.c.opts.callTimeout
	if d <= 0 {
		d = time.Minute
	}
	n.retireLocked(c, d, why)
}

// retireLocked retires c, the node's connection until now, into the drain
// set, given up as lost if its drain lasts d. Its writer ends the drain
// (endDrainIfDone) once it has written what it took.
func (n *node) retireLocked(c *nodeConn, d time.Duration, why string) {
	c.retire()
	n.draining.add(c)
	n.limitDrainLocked(c, d, why)
}

// limitDrainLocked gives c up as lost if its drain has not ended d from now.
func (n *node) limitDrainLocked(c *nodeConn, d time.Duration, why string) {
	if c.drain.timer != nil {
		c.drain.timer.Stop()
	}
	c.drain.timer = time.AfterFunc(d, func() {
		n.connLost(c, fmt.Errorf("no reply within %v after %s (node %q at %s)", d, why, n.name, c.addr), 0)
	})
}

// endDrainIfDone closes a draining connection once nothing written on it
// waits for a reply. Pushes on it that no reply has proven received are
// proven first: it has the writer write a probe after them, bounded by the
// peer timeout as the watchdog's probes are; if the probe goes unanswered
// the drain timer counts them unconfirmed (connLost).
func (n *node) endDrainIfDone(c *nodeConn) {
	n.mu.Lock()
	if !n.draining.has(c) || !c.drain.flushed || c.writing {
		n.mu.Unlock()
		return
	}
	if n.inflight.any(func(w *call) bool { return c.wrote(w) && !n.out.holds(w) }) {
		n.mu.Unlock()
		return
	}
	if seq, ok := c.lastUnconfirmed(); ok {
		// In flight like a call c wrote, so that the drain waits for it.
		w := &call{done: make(chan struct{}, 1), where: whereOut, session: n.sessions.Next(), seq: seq, gen: c.lastGen}
		n.inflight.add(w)
		c.drain.probe = w
		if n.state != StateClosed { // Close set the bound of its own drains
			n.limitDrainLocked(c, n.c.opts.peerTimeout, "the probe written to prove its pushes")
		}
		n.mu.Unlock()
		c.wakeWriter()
		c.kickReader() // nobody waits for the probe to read its reply
		return
	}
	n.draining.remove(c)
	n.mu.Unlock()
	n.log.V(1).Info("Old connection drained", "address", c.addr)
	c.close()
}

// endDrains ends the drains that no longer wait for anything, after calls
// were withdrawn.
func (n *node) endDrains() {
	n.mu.Lock()
	conns := n.draining.list()
	n.mu.Unlock()
	for _, c := range conns {
		n.endDrainIfDone(c)
	}
}
