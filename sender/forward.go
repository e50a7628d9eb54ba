package sender

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Message is one request as another sender wrote it, for a relay to pass on
// unchanged: a push or a call, to a service name or a numeric handle, with
// the trace tag it came with.
type Message struct {
	// Addr is the service ("@name", ".name", ":0000000a"); "" addresses
	// Handle instead.
	Addr string
	// Handle is the numeric service handle when Addr is "". Handle 0 is
	// skynet's name query: Payload is pack(name), the reply pack(handle).
	Handle uint32
	// Push marks a message that gets no reply (cluster.send).
	Push bool
	// Payload is the message's bytes, forwarded as they are; Forward copies
	// them before it returns.
	Payload []byte
	// Trace is the trace tag written before the message as it is (skynet's
	// own "(node-node-session)" form or a W3C traceparent); nil for none.
	// The Client starts no span for a forwarded message.
	Trace []byte
}

// Forward sends msg to node as Send or Call would, and returns once it has
// its place in the node's FIFO: a message forwarded later leaves after it,
// so a relay keeps the order it read messages in without waiting for
// replies. For a call, done gets the reply or the error exactly once, from
// another goroutine, within ctx (or the call timeout); it must not block.
// done is not called when Forward returns an error (the errors of Send:
// nothing was queued). For a push done is never called.
func (c *Client) Forward(ctx context.Context, node string, msg *Message, done func(reply []byte, err error)) error {
	if node == "" {
		return errors.New("skycall: empty node name")
	}
	if msg.Addr != "" {
		if err := checkName(node, msg.Addr); err != nil {
			return err
		}
	}
	if msg.Addr == "" && msg.Handle == 0 && msg.Push {
		return fmt.Errorf("skycall: a push to handle 0 on node %q: that is the query address, which only calls reach", node)
	}
	n := c.node(node)
	m := &message{name: msg.Addr, push: msg.Push}
	if msg.Addr == "" {
		m.addr = msg.Handle
	}
	b := body{payload: msg.Payload, tag: msg.Trace}
	if msg.Push {
		return c.sendTagged(ctx, n, nil, m, b)
	}
	start := time.Now()
	n, w, err := c.submitCall(ctx, n, nil, m, b, nil, start)
	if err != nil {
		return err
	}
	go func() { done(c.awaitCall(ctx, n, m, w, start)) }()
	return nil
}
