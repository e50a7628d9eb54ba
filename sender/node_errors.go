package sender

import (
	"fmt"

	"github.com/skycall-io/skycall/sender/registry"
)

// The errors a node's messages fail with, and how failed calls are counted.

func (n *node) registryError(err error) error {
	return newNodeError(ErrRegistry, err, "skycall: node %q: the registry cannot answer: %v", n.name, err)
}

func (n *node) downError(e registry.Entry) error {
	why := ""
	if e.Reason != "" {
		why = " (" + e.Reason + ")"
	}
	return newNodeError(ErrNodeDown, nil,
		"skycall: node %q is marked down in the registry%s; messages to it fail until it is brought back up", n.name, why)
}

func (n *node) unknownError() error {
	return newNodeError(ErrUnknownNode, nil,
		"skycall: node %q is not in the registry, which is no-wait (__nowaiting); add the node, or turn no-wait off to wait for it", n.name)
}

func (n *node) tooLarge(size int) error {
	return newNodeError(ErrMessageTooLarge, nil,
		"skycall: message to node %q is %d bytes, over the %d-byte limit; split it or raise WithMaxMessageSize (the receiver must accept it too)",
		n.name, size, n.c.opts.maxMessageSize)
}

// ctxError explains a Call whose ctx ended.
func (n *node) ctxError(err error, addr uint32, name string, written bool) error {
	target := name
	if target == "" {
		target = handleAddress(addr)
	}
	if written {
		return fmt.Errorf("skycall: call to node %q service %s: %w (the request was sent; its reply will be discarded)", n.name, target, err)
	}
	n.mu.Lock()
	st, reason, last := n.state, n.reason, n.lastErr
	n.mu.Unlock()
	detail := "node " + st.String()
	if reason != "" && st != StateReady {
		detail += ": " + reason
	}
	if last != nil && st != StateReady {
		detail += "; last connection error: " + last.Error()
	}
	return &nodeError{kind: err, cause: last, msg: fmt.Sprintf(
		"skycall: call to node %q service %s: %v while queued (%s); it was not sent", n.name, target, err, detail)}
}

func (n *node) deliverTimeout(w *call, written bool) {
	target := w.name
	if target == "" {
		target = handleAddress(w.addr)
	}
	what := "while queued; it was not sent"
	if written {
		what = "after it was sent; a late reply will be discarded"
	}
	w.err = &timeoutError{msg: fmt.Sprintf(
		"skycall: call to node %q service %s got no reply within the default call timeout %v (%s); give ctx a deadline or change WithCallTimeout",
		n.name, target, n.c.opts.callTimeout, what)}
	w.done <- struct{}{}
}

func (n *node) countCall(result string) {
	n.c.metrics.calls.WithLabelValues(n.name, result).Inc()
}

// countCallErr counts a failed call by its result, and returns it.
func (n *node) countCallErr(err error) string {
	r := callResultOf(err)
	switch r {
	case resultRemoteError:
		n.m.callsRemote.Inc()
	case "":
	default:
		n.countCall(r)
	}
	return r
}
