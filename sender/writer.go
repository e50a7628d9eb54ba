package sender

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"
)

// The writer side of a connection. Frames reach the socket two ways: the
// connection's writer goroutine takes the node's outbox in batches, a Write
// each, so that many messages share one syscall; and a lone Call's caller
// writes its own frame when the writer is idle (takeOwnLocked, writeOwn),
// which spares the wake-up of the writer goroutine. Both end in writeBatch.

// A node's free outbox chunks beyond clientKeepBuffer bytes are given back
// once its writer has had nothing to write for clientShrinkAfter.
const (
	clientKeepBuffer  = 4 << 20
	clientShrinkAfter = time.Second
)

// wakeWriter tells the writer the outbox has frames.
func (c *nodeConn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the connection's writer goroutine: it writes the node's
// outbox and, once the connection is retired, the probes of its drain.
func (c *nodeConn) writeLoop() {
	defer c.n.c.wg.Done()
	if c.writeOutbox() {
		c.writeDrainProbes()
	}
}

// writeOutbox writes the node's outbox in batches: it takes the chunks under
// the node's lock and writes them outside it, a Write each. It returns true
// when c was retired, everything it took written; false when c ended.
func (c *nodeConn) writeOutbox() bool {
	n := c.n
	var spare batch // the last batch written: its chunks are reused
	for {
		n.mu.Lock()
		for n.conn == c && (n.out.msgs == 0 || c.writing) {
			if n.out.msgs == 0 && len(n.out.chunks) > 0 { // only withdrawn calls: nothing to write
				n.out.reset()
			}
			spare.chunks = n.out.recycle(spare.chunks)
			// Idle with the chunks a burst needed: give them back once the
			// idle lasts. Not sooner: given back between the rounds of a
			// burst, they would be allocated again for the next round.
			var shrink <-chan time.Time
			if n.out.freeBytes() > clientKeepBuffer {
				if c.shrink == nil {
					c.shrink = time.NewTimer(clientShrinkAfter)
				} else {
					c.shrink.Reset(clientShrinkAfter)
				}
				shrink = c.shrink.C
			}
			n.signaled = false
			n.mu.Unlock()
			select {
			case <-c.wake:
			case <-shrink:
				n.mu.Lock()
				n.out.trim(clientKeepBuffer)
				continue
			case <-c.retired:
				return true
			case <-c.done:
				return false
			}
			// Woken from idle by the first message of a burst: let the
			// callers that are runnable now append theirs too, so that one
			// write carries many messages instead of one syscall each.
			runtime.Gosched()
			n.mu.Lock()
		}
		if n.conn != c {
			retired := c.draining.Load()
			n.mu.Unlock()
			return retired
		}
		b := n.out.take(&spare)
		c.lastGen = b.gen
		n.quota.release(b.msgs, b.bytes)
		n.mu.Unlock()

		if !c.writeBatch(&b) {
			return false
		}
		spare = b
	}
}

// writeDrainProbes is the writer of a retired connection once everything
// it took from the outbox is written: it writes the probes endDrainIfDone
// asks for, after every push, until the connection closes.
func (c *nodeConn) writeDrainProbes() {
	n := c.n
	n.mu.Lock()
	c.drain.flushed = true
	n.mu.Unlock()
	n.endDrainIfDone(c)
	var buf []byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		n.mu.Lock()
		w := c.drain.probe
		c.drain.probe = nil
		n.mu.Unlock()
		if w == nil {
			continue
		}
		buf = appendRequest(buf[:0], &message{}, body{payload: probeQuery}, w.session)
		wrote, err := c.write(buf)
		if err != nil {
			n.connLost(c, err, 0)
			return
		}
		n.m.written.Inc()
		n.m.writtenBytes.Add(float64(wrote))
	}
}

// takeOwnLocked lets the caller of the call just appended write it, when
// it is the only call in flight, all the outbox holds, and the writer is
// idle: it returns the batch to write with writeOwn, and ok. Under load
// the writer goroutine batches as usual. Called with n.mu held,
// c == n.conn.
func (c *nodeConn) takeOwnLocked() (b batch, ok bool) {
	n := c.n
	if n.signaled || c.writing || n.out.msgs != 1 || n.inflight.len() != 1 {
		return batch{}, false
	}
	c.writing = true
	b = n.out.take(&c.ownSpare)
	c.lastGen = b.gen
	n.quota.release(b.msgs, b.bytes)
	return b, true
}

// writeOwn writes the batch takeOwnLocked gave, then hands the writer what
// was appended meanwhile.
func (c *nodeConn) writeOwn(b batch) {
	n := c.n
	c.writeBatch(&b)
	n.mu.Lock()
	c.writing = false
	c.ownSpare.chunks = n.out.recycle(b.chunks)
	c.ownSpare.pushes = b.pushes
	if n.conn == c && n.out.msgs > 0 && !n.signaled {
		n.signaled = true
		c.wakeWriter()
	}
	retired := c.draining.Load()
	n.mu.Unlock()
	if retired {
		n.endDrainIfDone(c) // its drain waited for this write to end
	}
}

// writeChunk is how much one Write carries, so that the write deadline
// measures progress rather than the size of a batch.
const writeChunk = 256 << 10

// writeBatch writes b, a batch taken from the outbox; when the write fails
// it ends the connection and returns false.
func (c *nodeConn) writeBatch(b *batch) bool {
	n := c.n
	wrote, err := c.writeChunks(b.chunks)
	if err != nil {
		if wrote > 0 {
			// Some of the batch may have arrived: its pushes are
			// unconfirmed, not certainly lost.
			c.written(&b.pushes)
			n.connLost(c, err, 0)
		} else {
			n.connLost(c, err, b.sends)
		}
		return false
	}
	c.written(&b.pushes)
	n.m.written.Add(float64(b.msgs))
	n.m.writtenBytes.Add(float64(wrote))
	return true
}

// writeChunks writes a batch's chunks in order and returns how many bytes
// were written.
func (c *nodeConn) writeChunks(chunks [][]byte) (int, error) {
	total := 0
	for _, b := range chunks {
		w, err := c.write(b)
		total += w
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// write writes buf in pieces of writeChunk, each within the peer timeout,
// and returns how many bytes were written.
func (c *nodeConn) write(buf []byte) (int, error) {
	d := c.n.c.opts.peerTimeout
	total := 0
	for len(buf) > 0 {
		k := min(len(buf), writeChunk)
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
		w, err := c.nc.Write(buf[:k])
		total += w
		if w > 0 {
			c.lastWrite.Store(time.Now().UnixNano())
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return total, fmt.Errorf("%w: %s took no bytes for %v (%d bytes waiting)", ErrPeerUnresponsive, c.addr, d, len(buf)-w)
			}
			return total, err
		}
		buf = buf[w:]
	}
	return total, nil
}
