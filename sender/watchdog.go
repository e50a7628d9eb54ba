package sender

import (
	"fmt"
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
// a byte read, or a write makes no progress for d (its deadline, writer.go),
// the connection is given up with ErrPeerUnresponsive.

// probeQuery is the payload of a probe: pack(wire.NodeQueryName).
var probeQuery = func() []byte {
	b, _ := luaseri.Pack(wire.NodeQueryName) // a string always packs
	return b
}()

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
	n.appendLocked(&message{call: w}, body{payload: probeQuery})
	n.mu.Unlock()
	c.wakeWriter()
	c.kickReader() // nobody waits for the probe to read its reply
	return true
}
