package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The Server's memory follows what its peers actually send, within limits
// that hold across all connections: how many connections, how
// many from one peer address, how many bytes of multipart requests being
// reassembled (Server.partial, a wire.Budget) and how many bytes of requests
// waiting for their handler (Server.queued).

// refusalLogEvery is how often refusals are logged at most, so that a
// flood of connections makes one line a second, with a count, not one each.
const refusalLogEvery = time.Second

// peerIP is the IP address of a peer, the key of the per-peer limit.
func peerIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Kinds of refusal, each logged at most once per refusalLogEvery.
const (
	refusedServer = iota // the Server's WithMaxConns
	refusedPeer          // the peer address's WithMaxConnsPerPeer
)

// admit takes a connection slot for a peer at ip, or closes nc and logs why
// when the Server or that peer is at its limit.
func (s *Server) admit(nc net.Conn, ip string) bool {
	s.mu.Lock()
	var kind, limit int
	var what string
	switch {
	case len(s.conns)+s.admitting >= s.opts.maxConns:
		kind, limit, what = refusedServer, s.opts.maxConns, "connections open"
	case s.perPeer[ip] >= s.opts.maxConnsPeer:
		kind, limit, what = refusedPeer, s.opts.maxConnsPeer, "connections per peer address"
	default:
		s.perPeer[ip]++
		s.admitting++
		s.mu.Unlock()
		return true
	}
	now := time.Now()
	s.refused[kind]++
	n := 0
	if now.Sub(s.refusedLogAt[kind]) >= refusalLogEvery {
		n, s.refused[kind], s.refusedLogAt[kind] = s.refused[kind], 0, now
	}
	s.mu.Unlock()
	nc.Close()
	if n > 0 {
		s.log.Info("Refused connection: limit reached", "peer", nc.RemoteAddr().String(), "limit", what, "max", limit,
			"refusedSinceLastLog", n, "hint", "raise WithMaxConns or WithMaxConnsPerPeer if these peers are legitimate")
	}
	return false
}

// releaseSlotLocked gives back the slot of a connection from ip. Called
// with s.mu held.
func (s *Server) releaseSlotLocked(ip string) {
	s.perPeer[ip]--
	if s.perPeer[ip] <= 0 {
		delete(s.perPeer, ip)
	}
}

// byteBudget is a budget of bytes that waiters block on: the bytes of
// requests handed to services and not yet handled. One request is always
// admitted when nothing is held, so that a request larger than the budget
// is still served (alone).
//
// Taking and giving back bytes is one atomic operation while there is room
// and no one waits, not a mutex taken twice per message. mu and cond are
// for waiting.
type byteBudget struct {
	max     int64
	used    atomic.Int64
	waiters atomic.Int32 // acquirers inside the slow path of acquire
	mu      sync.Mutex
	cond    sync.Cond
}

func newByteBudget(max int64) *byteBudget {
	b := &byteBudget{max: max}
	b.cond.L = &b.mu
	return b
}

// take adds n if it fits.
func (b *byteBudget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u > 0 && u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// acquire waits until n bytes fit, or stop is closed (false).
func (b *byteBudget) acquire(n int64, stop <-chan struct{}) bool {
	if b.take(n) {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Counted before looking at used again: release gives back its bytes
	// before it looks at waiters, so either this sees the bytes or release
	// sees the waiter, and then broadcasts under mu, which this holds until
	// Wait has registered it.
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	for !b.take(n) {
		select {
		case <-stop:
			return false
		default:
		}
		b.cond.Wait()
	}
	return true
}

func (b *byteBudget) release(n int64) {
	b.used.Add(-n)
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	}
}

// wake makes waiters look at their stop channels again. Broadcasting under
// the lock means a waiter either saw the stop before it waited or is woken.
func (b *byteBudget) wake() {
	b.mu.Lock()
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *byteBudget) usedBytes() int64 {
	return b.used.Load()
}
