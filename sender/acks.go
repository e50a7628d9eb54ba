package sender

// Push accounting. A Send has no reply, so once written its fate is unknown
// until something later on the same connection proves the peer read it: TCP
// delivers in order, so a reply to any call written after the push (a probe
// included) proves the peer received the push. A connection closed in
// order (drained, Client.Close, idle) first writes a probe after its last
// push, so that a clean close proves them all. When a connection breaks,
// or that probe gets no reply within the peer timeout, the pushes written
// on it and not proven received are counted and logged as dropped with
// reason "unconfirmed": outcome unknown, some of them did arrive. A push
// counted "connection_lost" was never written at all, so it certainly did
// not.
//
// Every message appended to a node's outbox gets a write ordinal
// (node.seq); the connection keeps the ordinals of the pushes it wrote and
// the highest ordinal a reply has proven.

// acksProbeAt is how many unconfirmed pushes make the watchdog probe at
// once rather than wait for quiet, so that the list stays short.
const acksProbeAt = 4096

// seqRanges is a set of write ordinals kept as ascending runs: the pushes
// of a burst of Sends have consecutive ordinals, so a burst is one run, and
// recording it costs no allocation per push, as a list of ordinals growing
// by one per Send would.
type seqRanges struct {
	runs []seqRun
	n    int // ordinals in runs
}

// seqRun is the ordinals lo..hi, both included.
type seqRun struct{ lo, hi uint64 }

// add records seq, which is above every ordinal already recorded.
func (r *seqRanges) add(seq uint64) {
	if k := len(r.runs); k > 0 && r.runs[k-1].hi+1 == seq {
		r.runs[k-1].hi = seq
	} else {
		r.runs = append(r.runs, seqRun{seq, seq})
	}
	r.n++
}

// addAbove records the ordinals of o above floor; they are above every
// ordinal already recorded.
func (r *seqRanges) addAbove(o *seqRanges, floor uint64) {
	for _, run := range o.runs {
		if run.hi <= floor {
			continue
		}
		run.lo = max(run.lo, floor+1)
		if k := len(r.runs); k > 0 && r.runs[k-1].hi+1 == run.lo {
			r.runs[k-1].hi = run.hi
		} else {
			r.runs = append(r.runs, run)
		}
		r.n += int(run.hi - run.lo + 1)
	}
}

// dropThrough forgets the ordinals up to seq.
func (r *seqRanges) dropThrough(seq uint64) {
	i := 0
	for ; i < len(r.runs) && r.runs[i].hi <= seq; i++ {
		r.n -= int(r.runs[i].hi - r.runs[i].lo + 1)
	}
	if i < len(r.runs) && r.runs[i].lo <= seq {
		r.n -= int(seq - r.runs[i].lo + 1)
		r.runs[i].lo = seq + 1
	}
	r.runs = append(r.runs[:0], r.runs[i:]...)
}

func (r *seqRanges) reset() {
	r.runs, r.n = r.runs[:0], 0
}

// written records the pushes of a batch the writer wrote.
func (c *nodeConn) written(pushes *seqRanges) {
	c.ackMu.Lock()
	// A reply may have come before Write returned.
	c.unacked.addAbove(pushes, c.acked)
	n := c.unacked.n
	c.ackMu.Unlock()
	if n >= acksProbeAt {
		c.probeSoon()
	}
}

// probeSoon has the watchdog probe c now rather than after a quiet peer
// timeout, so that a reply proves the pushes written so far.
func (c *nodeConn) probeSoon() {
	select {
	case c.probeNow <- struct{}{}:
	default:
	}
}

// ack records that the peer replied to the message of ordinal seq: every
// push written before it was received.
func (c *nodeConn) ack(seq uint64) {
	c.ackMu.Lock()
	if seq > c.acked {
		c.acked = seq
		c.unacked.dropThrough(seq)
	}
	c.ackMu.Unlock()
}

// lastUnconfirmed returns the ordinal of the last push written on c that no
// reply has proven received, if any: a reply to a probe written after it
// proves them all.
func (c *nodeConn) lastUnconfirmed() (seq uint64, ok bool) {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	if k := len(c.unacked.runs); k > 0 {
		return c.unacked.runs[k-1].hi, true
	}
	return 0, false
}

// unconfirmed takes the count of pushes written and never proven received,
// once: the connection is over.
func (c *nodeConn) unconfirmed() int {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	n := c.unacked.n
	c.unacked, c.acked = seqRanges{}, ^uint64(0)
	return n
}
