package registry

import "sync"

// Static is an in-memory registry that the program changes at run time. It
// is the one tests use, and a fine default for a program that knows its
// peers. The zero value is not usable; call NewStatic.
type Static struct {
	mu     sync.RWMutex
	nodes  map[string]Entry
	noWait bool
	w      Watchers
}

// NewStatic returns a Static registry holding nodes (name to host:port), all
// Ready. An empty address marks a node known but not ready.
func NewStatic(nodes map[string]string) *Static {
	s := &Static{nodes: make(map[string]Entry, len(nodes))}
	for name, addr := range nodes {
		s.nodes[name] = readyOrNot(name, addr)
	}
	return s
}

func readyOrNot(name, addr string) Entry {
	if addr == "" {
		return Entry{Node: name, State: NotReady, Reason: "no address yet"}
	}
	return Entry{Node: name, State: Ready, Address: addr}
}

// Set makes node Ready at address (host:port), or known but NotReady when
// address is empty. Senders connected elsewhere move to the new address.
func (s *Static) Set(node, address string) {
	s.put(readyOrNot(node, address))
}

// SetNotReady marks node known but not usable: callers wait for it. reason
// shows in their errors and logs if they give up.
func (s *Static) SetNotReady(node, reason string) {
	s.put(Entry{Node: node, State: NotReady, Reason: reason})
}

// SetDown marks node administratively down (skynet's `node = false`):
// queued and new messages fail with the sender's ErrNodeDown.
func (s *Static) SetDown(node string) {
	s.put(Entry{Node: node, State: Down, Reason: "marked down"})
}

// SetIncarnation makes node Ready at address, served by the process
// incarnation (for a pod, its UID). A sender connected to another
// incarnation, even at the same address, takes the node for a new one.
func (s *Static) SetIncarnation(node, address, incarnation string) {
	s.put(Entry{Node: node, State: Ready, Address: address, Incarnation: incarnation})
}

// SetDraining marks node Draining: the process at address (incarnation,
// where known) is leaving. Callers wait for a replacement, as for NotReady.
func (s *Static) SetDraining(node, address, incarnation string) {
	s.put(Entry{Node: node, State: Draining, Address: address, Incarnation: incarnation, Reason: "draining"})
}

// Delete forgets node: it becomes Absent.
func (s *Static) Delete(node string) {
	s.mu.Lock()
	_, had := s.nodes[node]
	delete(s.nodes, node)
	s.mu.Unlock()
	if had {
		s.w.Notify(node)
	}
}

// SetNoWait sets whether callers of an absent node fail at once (true) or
// wait for it to appear (false, the default); skynet's __nowaiting.
func (s *Static) SetNoWait(noWait bool) {
	s.mu.Lock()
	changed := s.noWait != noWait
	s.noWait = noWait
	s.mu.Unlock()
	if changed {
		s.w.NotifyAll()
	}
}

func (s *Static) put(e Entry) {
	s.mu.Lock()
	old, had := s.nodes[e.Node]
	s.nodes[e.Node] = e
	s.mu.Unlock()
	if !had || old != e {
		s.w.Notify(e.Node)
	}
}

// Lookup implements Registry.
func (s *Static) Lookup(node string) (Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e, ok := s.nodes[node]; ok {
		return e, nil
	}
	return Entry{Node: node, State: Absent, NoWait: s.noWait}, nil
}

// Watch implements Registry.
func (s *Static) Watch(node string, notify func()) (stop func()) {
	return s.w.Add(node, notify)
}
