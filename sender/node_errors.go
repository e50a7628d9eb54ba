package sender

import (
	"context"
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
	msg, last := n.waitEnded(err.Error(), addr, name, written)
	return &nodeError{kind: err, cause: last, msg: msg}
}

// deliverTimeout fails a Call that has waited the Client's call timeout.
func (n *node) deliverTimeout(w *call, written bool) {
	why := fmt.Sprintf("call timeout %v (WithCallTimeout) exceeded", n.c.opts.callTimeout)
	if !n.c.opts.callTimeoutSet {
		why = fmt.Sprintf("default call timeout %v (DefaultCallTimeout) exceeded", n.c.opts.callTimeout)
	}
	msg, last := n.waitEnded(why, w.addr, w.name, written)
	w.err = &timeoutError{nodeError{kind: context.DeadlineExceeded, cause: last, msg: msg}}
	w.done <- struct{}{}
}

// waitEnded says why a Call stopped waiting, whatever ended the wait: a
// call still queued names the node's state, why it is in it, and the last
// connection error, which it also returns as the cause.
func (n *node) waitEnded(why string, addr uint32, name string, written bool) (string, error) {
	target := name
	if target == "" {
		target = handleAddress(addr)
	}
	if written {
		return fmt.Sprintf("skycall: call to node %q service %s: %s (the request was sent; its reply will be discarded)",
			n.name, target, why), nil
	}
	n.mu.Lock()
	st, reason, last := n.state, n.reason, n.lastErr
	n.mu.Unlock()
	detail := "node " + st.String()
	if st == StateReady {
		last = nil // the call waited behind others, not for a connection
	}
	if reason != "" && st != StateReady {
		detail += ": " + reason
	}
	if last != nil {
		detail += "; last connection error: " + last.Error()
	}
	return fmt.Sprintf("skycall: call to node %q service %s: %s while queued (%s); it was not sent",
		n.name, target, why, detail), last
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

// timeoutError is the Client's call timeout (WithCallTimeout) passing: a
// nodeError of kind context.DeadlineExceeded, told apart from a ctx
// deadline for the metrics.
type timeoutError struct{ nodeError }

func (e *timeoutError) Timeout() bool { return true }
