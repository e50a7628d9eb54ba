package sender

import (
	"errors"
	"fmt"

	"github.com/skycall-io/skycall/sender/registry"
)

// Errors returned by the Client, tested with errors.Is. The errors callers
// get wrap one of these and say which node, and what to do, in their text.
var (
	// ErrUnknownNode: the registry has no entry for the node and is no-wait
	// (skynet's __nowaiting), so the message failed at once.
	ErrUnknownNode = errors.New("skycall: unknown node")
	// ErrNodeDown: the node is administratively down in the registry
	// (skynet's `node = false`, ClusterNode spec.down). Nothing was sent.
	ErrNodeDown = errors.New("skycall: node down")
	// ErrQueueFull: the node's queue was full and the Client was built
	// WithQueueFullError. Nothing was sent.
	ErrQueueFull = errors.New("skycall: queue full")
	// ErrConnectionLost: the connection broke while a call was in flight:
	// its request may or may not have been processed.
	ErrConnectionLost = errors.New("skycall: connection lost")
	// ErrPeerUnresponsive: a connected peer neither answered a probe nor
	// took the bytes written to it within the peer timeout
	// (WithPeerTimeout); the connection was closed, and the calls in flight
	// on it fail with ErrConnectionLost wrapping this.
	ErrPeerUnresponsive = errors.New("skycall: peer unresponsive")
	// ErrMessageTooLarge: the payload is over the maximum message size.
	// Nothing was queued.
	ErrMessageTooLarge = errors.New("skycall: message too large")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("skycall: client closed")
	// ErrWrongNode: the address the registry gave answered with another
	// node's name. The Client disconnects, looks the node up again and
	// retries; calls wait meanwhile, and their deadline error wraps this.
	ErrWrongNode = errors.New("skycall: wrong node at address")
	// ErrRegistry: the registry cannot answer (for example the pod lacks
	// permission to read ClusterNodes). It is registry.ErrRegistry.
	ErrRegistry = registry.ErrRegistry
)

// RemoteError is an error reply from the remote node: its service failed or
// does not exist ("Invalid name"), or a query found no such name ("name
// not found"). The request was delivered.
type RemoteError struct {
	Node    string // the node called
	Address string // the service address: "@name", ".name", or ":0000000a" for a handle
	Message string // the remote text
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("skycall: node %q service %s replied with an error: %s", e.Node, e.Address, e.Message)
}

// nodeError is an error about one node: Error is a full sentence, Unwrap
// gives the sentinel and the cause (a ctx error, an I/O error), if any.
type nodeError struct {
	kind  error
	msg   string
	cause error
}

func (e *nodeError) Error() string { return e.msg }

func (e *nodeError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func newNodeError(kind, cause error, format string, args ...any) error {
	return &nodeError{kind: kind, cause: cause, msg: fmt.Sprintf(format, args...)}
}

// handleAddress formats a numeric address as skynet writes a handle.
func handleAddress(h uint32) string { return fmt.Sprintf(":%08x", h) }
