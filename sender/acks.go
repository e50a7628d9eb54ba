package sender

import "sort"

// Push accounting (issue 17, item 6). A Send has no reply, so once written
// its fate is unknown until something later on the same connection proves
// the peer read it: TCP delivers in order, so a reply to any call written
// after the push (a probe included) proves the peer received the push. When
// a connection breaks, the pushes written on it and not proven received are
// counted and logged as dropped with reason "unconfirmed": outcome unknown,
// some of them did arrive. A push counted "connection_lost" was never
// written at all, so it certainly did not.
//
// Every message appended to a node's outbox gets a write ordinal
// (node.seq); the connection keeps the ordinals of the pushes it wrote and
// the highest ordinal a reply has proven.

// acksProbeAt is how many unconfirmed pushes make the watchdog probe at
// once rather than wait for quiet, so that the list stays short.
const acksProbeAt = 4096

// written records the pushes of a batch the writer wrote.
func (c *nodeConn) written(pushes []uint64) {
	c.ackMu.Lock()
	for _, s := range pushes {
		if s > c.acked { // a reply may have come before Write returned
			c.unacked = append(c.unacked, s)
		}
	}
	n := len(c.unacked)
	c.ackMu.Unlock()
	if n >= acksProbeAt {
		select {
		case c.probeNow <- struct{}{}:
		default:
		}
	}
}

// ack records that the peer replied to the message of ordinal seq: every
// push written before it was received.
func (c *nodeConn) ack(seq uint64) {
	c.ackMu.Lock()
	if seq > c.acked {
		c.acked = seq
		i := sort.Search(len(c.unacked), func(i int) bool { return c.unacked[i] > seq })
		c.unacked = append(c.unacked[:0], c.unacked[i:]...)
	}
	c.ackMu.Unlock()
}

// unconfirmed takes the count of pushes written and never proven received,
// once: the connection is over.
func (c *nodeConn) unconfirmed() int {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	n := len(c.unacked)
	c.unacked, c.acked = nil, ^uint64(0)
	return n
}
