package sender

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/wire"
)

// A ready connection whose peer stops working while the socket stays open
// (SIGSTOP, a hung process, a peer that stopped reading) is invisible to
// TCP keepalive, which the peer's kernel answers. The watchdog notices it
// with the protocol itself (WithPeerTimeout): after d with nothing read it
// queues a probe, the node query that confirmed the connection; when d
// passes after the later of the probe and the last write progress without
// a byte read, or a write makes no progress for d, the connection is given
// up with ErrPeerUnresponsive.

// writeChunk is how much one Write carries, so that the write deadline
// measures progress rather than the size of a batch.
const writeChunk = 256 << 10

// probeQuery is the payload of a probe: pack(wire.NodeQueryName).
var probeQuery = func() []byte {
	b, _ := luaseri.Pack(wire.NodeQueryName) // a string always packs
	return b
}()

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

// watch is the connection's watchdog goroutine; it ends with the
// connection, or when a move retires it (the drain has its own bound).
func (c *nodeConn) watch() {
	n := c.n
	defer n.c.wg.Done()
	d := n.c.opts.peerTimeout
	t := time.NewTicker(max(d/8, time.Millisecond))
	defer t.Stop()
	var probedAt, readBefore int64 // probedAt 0: no probe out
	for {
		select {
		case <-c.done:
			return
		case <-c.retired:
			return
		case <-c.probeNow:
			if probedAt == 0 {
				if !c.probe() {
					return
				}
				probedAt, readBefore = time.Now().UnixNano(), c.lastRead.Load()
			}
		case now := <-t.C:
			read := c.lastRead.Load()
			if probedAt != 0 {
				if read != readBefore {
					probedAt = 0 // answered, by the probe or anything else
					continue
				}
				since := max(probedAt, c.lastWrite.Load())
				if now.UnixNano()-since >= int64(d) {
					quiet := time.Duration(now.UnixNano() - read).Round(time.Millisecond)
					n.connLost(c, fmt.Errorf("%w: %s answered nothing for %v, not even a probe", ErrPeerUnresponsive, c.addr, quiet), 0)
					return
				}
				continue
			}
			if now.UnixNano()-read >= int64(d) {
				if !c.probe() {
					return
				}
				probedAt, readBefore = now.UnixNano(), read
			}
		}
	}
}

// probe queues a node query on c, answered to nobody: any reply (a read)
// is what the watchdog looks for. false when c is no longer the node's
// connection.
func (c *nodeConn) probe() bool {
	n := c.n
	w := &call{done: make(chan struct{}, 1)} // not pooled: no one takes its delivery
	n.mu.Lock()
	if n.conn != c {
		n.mu.Unlock()
		return false
	}
	// Counted in the quota like any message, since the writer releases
	// what it takes; it is small and never waits for room.
	n.quota.add(len(probeQuery))
	n.appendLocked(&message{payload: probeQuery, call: w})
	n.mu.Unlock()
	c.wakeWriter()
	c.kickReader() // nobody waits for the probe to read its reply
	return true
}
