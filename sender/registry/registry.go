// Package registry tells a sender where the nodes it sends to live.
//
// A Registry answers one question, "what do you know about node X now?", and
// says when the answer may have changed. Implementations:
//
//   - Static: in memory, changed by the program at run time; the default for
//     tests and for programs that know their peers.
//   - File: skynet's cluster config file (`db = "10.0.0.7:2528"`,
//     `db = false`, `__nowaiting = true`), reloaded when it changes on disk,
//     including a Kubernetes ConfigMap mounted as a volume.
//   - kube.Registry (package sender/kube, which alone links client-go):
//     ClusterNode objects in one namespace, as resolved by the skycall
//     operator, followed with an informer.
//
// The states mirror skynet's cluster config: a Ready node has an address; an
// Absent node makes callers wait for it (unless the registry is no-wait,
// skynet's __nowaiting); a Down node (skynet's `name = false`) makes them fail
// at once. NotReady is a node the registry knows but that has no usable
// address yet (callers wait), and Unknown is a registry that cannot tell yet,
// such as a Kubernetes cache still loading: it is never taken for Absent.
// Draining is a NotReady node whose process is leaving (its pod is
// terminating, usually to be replaced): callers wait for the replacement,
// and a sender holding a connection to it stops writing new messages there.
// A registry that cannot tell draining from not ready (skynet's file has no
// word for it) says NotReady, which makes callers wait just the same.
//
// What a ClusterNode means to a sender is decided once, in package
// sender/kube (EntryOf), for its registry and for the operator alike; the
// registry ConfigMap's two files are written and read side by side, in
// clusterconfig.go (skynet's cluster config, safe to load whatever names
// and addresses it is given) and nodesjson.go (nodes.json).
package registry

import (
	"errors"
	"sync"
)

// State is what a registry knows about one node.
type State uint8

const (
	// Unknown: the registry cannot answer yet (for example its cache has not
	// loaded). Callers wait; a no-wait registry does not fail them.
	Unknown State = iota
	// Absent: the registry has no entry for the node. Callers wait for one
	// to appear, unless Entry.NoWait is set.
	Absent
	// NotReady: the node is known but has no usable address now. Callers wait.
	NotReady
	// Ready: the node can be reached at Entry.Address.
	Ready
	// Down: the node is administratively down (skynet's `name = false`):
	// callers fail at once and connections to it close.
	Down
	// Draining: the node has no ready address, and the process that was
	// serving it is terminating (Entry.Address and Entry.Incarnation say
	// which one, where known). Callers wait, as for NotReady; new messages
	// must not be written to the draining process, which only finishes
	// what it has been sent. Code that does not know a state must treat it
	// as NotReady (the sender does).
	Draining
)

var stateNames = [...]string{"unknown", "absent", "not_ready", "ready", "down", "draining"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "invalid"
}

// Entry is a registry's answer for one node.
type Entry struct {
	// Node is the node name looked up.
	Node string
	// State says whether the node can be used.
	State State
	// Address is host:port, set when State is Ready; when State is
	// Draining, the address being drained, if known.
	Address string
	// Incarnation identifies the process behind Address (for a pod, its
	// UID), where the registry knows it: empty otherwise. Two entries
	// with the same Address and different incarnations are two different
	// processes (a replaced pod may reuse the old one's IP), so a sender
	// must not carry a connection, or anything queued for a confirmed
	// peer, from one to the other.
	Incarnation string
	// NoWait, for an Absent node, asks callers to fail at once instead of
	// waiting for the node to appear (skynet's __nowaiting).
	NoWait bool
	// Reason explains a NotReady or Down state in words, for error messages
	// and logs (for example "NameConflict: ..."). Optional.
	Reason string
}

// Registry is where a sender looks nodes up.
//
// Implementations must be safe for concurrent use.
type Registry interface {
	// Lookup returns what the registry knows about node now. It never
	// blocks on I/O: a registry that cannot tell yet answers Unknown. An
	// error (wrapping ErrRegistry) means the registry cannot work at all
	// (for example it lacks permission to read its source); callers fail
	// with it until a later Lookup succeeds.
	Lookup(node string) (Entry, error)

	// Watch arranges for notify to be called whenever node's entry, or the
	// registry's error, may have changed, until stop is called. notify is
	// called from the registry's goroutines; it must return quickly and must
	// not call back into the registry. Calls may be spurious: the watcher
	// looks the node up again to see what changed.
	Watch(node string, notify func()) (stop func())
}

// ErrRegistry is wrapped by errors that mean a registry cannot answer.
var ErrRegistry = errors.New("registry unavailable")

// Watchers is the notification list of a Registry implementation: Watch
// adds to it, a change notifies it. The zero value is ready to use.
type Watchers struct {
	mu    sync.Mutex
	next  uint64
	nodes map[string]map[uint64]func()
}

// Add calls notify whenever node is notified, until stop.
func (w *Watchers) Add(node string, notify func()) (stop func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nodes == nil {
		w.nodes = make(map[string]map[uint64]func())
	}
	m := w.nodes[node]
	if m == nil {
		m = make(map[uint64]func())
		w.nodes[node] = m
	}
	w.next++
	id := w.next
	m[id] = notify
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			delete(w.nodes[node], id)
			if len(w.nodes[node]) == 0 {
				delete(w.nodes, node)
			}
		})
	}
}

// Notify calls the watchers of the given nodes.
func (w *Watchers) Notify(nodes ...string) {
	w.mu.Lock()
	var fns []func()
	for _, n := range nodes {
		for _, f := range w.nodes[n] {
			fns = append(fns, f)
		}
	}
	w.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// NotifyAll calls every watcher.
func (w *Watchers) NotifyAll() {
	w.mu.Lock()
	var fns []func()
	for _, m := range w.nodes {
		for _, f := range m {
			fns = append(fns, f)
		}
	}
	w.mu.Unlock()
	for _, f := range fns {
		f()
	}
}
