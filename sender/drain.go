package sender

import (
	"fmt"
	"time"
)

// drainSet is a node's old connections finishing the calls written on them
// after the node moved to another address or a new incarnation, or began
// draining (its pod is terminating). Guarded by node.mu.
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
	c.drainTimer.Stop()
	return true
}

// detachAll takes every connection out, for the caller to close once its
// calls have failed.
func (d drainSet) detachAll() []*nodeConn {
	var out []*nodeConn
	for c := range d {
		c.drainTimer.Stop()
		out = append(out, c)
	}
	clear(d)
	return out
}

// startDrain retires c: nothing more is written to it, and it closes once
// the calls written on it have their replies (or after the call timeout),
// so that a move or a drain fails no call that answers in time. Messages
// submitted from now on wait in the FIFO, in order, for the next
// connection. next is the state the node goes to (Connecting after a move,
// Resolving while the registry has no ready address) and why says why
// (for the log and the drain timeout's error).
func (n *node) startDrain(c *nodeConn, next State, why string) {
	n.mu.Lock()
	if n.conn != c {
		n.mu.Unlock()
		return
	}
	n.conn = nil
	n.setStateLocked(next, why)
	c.retire()
	d := n.c.opts.callTimeout
	if d <= 0 {
		d = time.Minute
	}
	c.drainTimer = time.AfterFunc(d, func() {
		n.connLost(c, fmt.Errorf("no reply within %v after %s (node %q at %s)", d, why, n.name, c.addr), 0)
	})
	n.draining.add(c)
	n.mu.Unlock()
	n.endDrainIfDone(c)
}

// endDrainIfDone closes a draining connection with no call left on it.
func (n *node) endDrainIfDone(c *nodeConn) {
	n.mu.Lock()
	if !n.draining.has(c) {
		n.mu.Unlock()
		return
	}
	if n.inflight.any(func(w *call) bool { return c.wrote(w) && !n.out.holds(w) }) {
		n.mu.Unlock()
		return
	}
	n.draining.remove(c)
	n.mu.Unlock()
	n.log.V(1).Info("Old connection drained", "address", c.addr)
	// Pushes written after the last reply on c are not proven received:
	// the peer may close before reading them (a pod that ends without a
	// preStop wait). Count them as connLost does.
	n.countUnconfirmed(c, "Pushes written on a drained connection were never confirmed received; they may or may not have arrived", "drained")
	c.close()
}
