package sender

import (
	"context"
	"fmt"

	"github.com/skycall-io/skycall/sender/luaseri"
)

// SendValues packs args as skynet.pack does and sends them, as
// cluster.send(node, addr, ...) does.
func (c *Client) SendValues(ctx context.Context, node, addr string, args ...any) error {
	payload, err := luaseri.Pack(args...)
	if err != nil {
		return fmt.Errorf("skycall: send to node %q service %s: %w", node, addr, err)
	}
	return c.Send(ctx, node, addr, payload)
}

// CallValues packs args as skynet.pack does, calls, and unpacks the reply,
// as cluster.call(node, addr, ...) does. Integers come back as int64.
func (c *Client) CallValues(ctx context.Context, node, addr string, args ...any) ([]any, error) {
	payload, err := luaseri.Pack(args...)
	if err != nil {
		return nil, fmt.Errorf("skycall: call to node %q service %s: %w", node, addr, err)
	}
	reply, err := c.Call(ctx, node, addr, payload)
	if err != nil {
		return nil, err
	}
	return unpackReply(node, addr, reply)
}

// SendValues is Client.SendValues to the bound service.
func (s *Service) SendValues(ctx context.Context, args ...any) error {
	payload, err := luaseri.Pack(args...)
	if err != nil {
		return fmt.Errorf("skycall: send to node %q service %s: %w", s.Node(), s.Address(), err)
	}
	return s.Send(ctx, payload)
}

// CallValues is Client.CallValues to the bound service.
func (s *Service) CallValues(ctx context.Context, args ...any) ([]any, error) {
	payload, err := luaseri.Pack(args...)
	if err != nil {
		return nil, fmt.Errorf("skycall: call to node %q service %s: %w", s.Node(), s.Address(), err)
	}
	reply, err := s.Call(ctx, payload)
	if err != nil {
		return nil, err
	}
	return unpackReply(s.Node(), s.Address(), reply)
}

func unpackReply(node, addr string, reply []byte) ([]any, error) {
	vals, err := luaseri.Unpack(reply)
	if err != nil {
		return nil, fmt.Errorf("skycall: reply from node %q service %s is not skynet.pack data: %w", node, addr, err)
	}
	return vals, nil
}
