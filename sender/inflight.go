package sender

import "sync"

// inflight is a node's table of calls encoded for or written to a
// connection, by session: the reader takes a call out when its reply comes,
// a withdrawal or a failure takes it out otherwise; whoever takes it out
// delivers to it (or owns it), so each call gets exactly one delivery.
//
// Lock order: node.mu before inflight.mu. inflight.mu is a leaf: nothing
// else is locked while it is held. The reader takes it without node.mu, so
// that replies never wait for senders.
type inflight struct {
	mu    sync.Mutex
	calls map[uint32]*call // guarded by mu
}

func newInflight() *inflight {
	return &inflight{calls: make(map[uint32]*call)}
}

// add records w under w.session.
func (t *inflight) add(w *call) {
	t.mu.Lock()
	t.calls[w.session] = w
	t.mu.Unlock()
}

// take removes and returns the call waiting for session, or nil.
func (t *inflight) take(session uint32) *call {
	t.mu.Lock()
	w := t.calls[session]
	if w != nil {
		delete(t.calls, session)
	}
	t.mu.Unlock()
	return w
}

// remove removes w if it is still in the table and reports whether it was:
// if not, someone else took it and delivers to it.
func (t *inflight) remove(w *call) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.calls[w.session] != w {
		return false
	}
	delete(t.calls, w.session)
	return true
}

// takeIf removes the calls for which match is true and appends them to dst.
func (t *inflight) takeIf(dst []*call, match func(*call) bool) []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s, w := range t.calls {
		if match(w) {
			delete(t.calls, s)
			dst = append(dst, w)
		}
	}
	return dst
}

// appendIf appends the calls for which match is true to dst, leaving them
// in the table.
func (t *inflight) appendIf(dst []*call, match func(*call) bool) []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.calls {
		if match(w) {
			dst = append(dst, w)
		}
	}
	return dst
}

// any reports whether some call matches.
func (t *inflight) any(match func(*call) bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.calls {
		if match(w) {
			return true
		}
	}
	return false
}

// len is the number of calls in the table.
func (t *inflight) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.calls)
}
