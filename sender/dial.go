package sender

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/tlsfiles"
	"github.com/skycall-io/skycall/sender/wire"
)

// connect dials addr, confirms the peer (and, where both know it, that it
// is the incarnation the registry names) and makes it the node's
// connection.
func (n *node) connect(addr, incarnation string) error {
	o := &n.c.opts
	n.redial.lastAddr = addr
	if n.redial.dials > 0 {
		n.m.reconnects.Inc()
	}
	n.redial.dials++
	n.setState(StateConnecting, "dialing "+addr)
	ctx, cancel := context.WithTimeout(n.c.ctx, o.connectTimeout)
	defer cancel()
	nc, err := o.dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		_ = tc.SetKeepAlivePeriod(30 * time.Second)
		_ = tc.SetKeepAlive(true)
	}
	if o.tls != nil {
		cfg := o.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	n.setState(StateConfirming, "connected to "+addr)
	c, err := n.confirm(ctx, nc, addr, incarnation)
	if err != nil {
		nc.Close()
		return err
	}
	n.becomeReady(c)
	return nil
}

// confirm does one protocol round trip before anything queued is written:
// a query for wire.NodeQueryName. A skycall Server answers with its node
// name (another name is the wrong node) and, if it has one, its
// incarnation (another than the registry's is another process at a reused
// address, or a registry behind a replacement: refused, retried with
// backoff). A plain skynet node answers "name not found", which still
// proves the peer speaks the protocol but says nothing of its name or
// incarnation: it is checked by address only. A skynet node running
// skycall's Lua service (lua/skycall) answers with the handle of the service
// registered under the name, and a call to that handle tells the node name
// and incarnation, checked as a Server's.
func (n *node) confirm(ctx context.Context, nc net.Conn, addr, incarnation string) (*nodeConn, error) {
	query, err := luaseri.Pack(wire.NodeQueryName)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(d)
	}
	var interrupted atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		interrupted.Store(true)
		_ = nc.SetDeadline(time.Unix(1, 0))
	})
	defer stop()
	fail := func(err error) (*nodeConn, error) {
		stop()
		if interrupted.Load() && ctx.Err() != nil {
			return nil, fmt.Errorf("confirming %s: %w", addr, ctx.Err())
		}
		return nil, err
	}
	dec := wire.NewResponseDecoder(bufio.NewReaderSize(nc, wire.ReadBufferSize), wire.Limits{MaxMessageSize: n.c.opts.maxMessageSize})
	dec.Grow(nc, wire.ReadBufferGrown)
	resp, err := n.roundTrip(nc, dec, 0, query, "the node query")
	if err != nil {
		return fail(fmt.Errorf("confirming %s: %w", addr, err))
	}
	peer := ""
	if !resp.OK {
		// skynet answers "name not found"; any error reply to the right
		// session still proves the peer speaks the protocol.
		if msg := string(resp.Payload); msg != "name not found" {
			n.log.Info("Unexpected answer to the node query; taking the peer for a skynet node", "address", addr, "answer", msg)
		}
	} else {
		vals, err := luaseri.Unpack(resp.Payload)
		if err != nil || len(vals) == 0 {
			return nil, fmt.Errorf("confirming %s: unreadable answer to the node query: %v", addr, err)
		}
		if h, ok := vals[0].(int64); ok && h > 0 && h <= 0xffffffff {
			// A skynet node answers a query with the handle of the
			// service registered under the name: skycall's Lua service
			// (lua/skycall) registers one there that tells the node
			// name and incarnation when called.
			if vals, err = n.askHandle(nc, dec, uint32(h), query); err != nil {
				return fail(fmt.Errorf("confirming %s: %w", addr, err))
			}
		}
		switch v := vals[0].(type) {
		case string:
			peer = v
		case []byte:
			peer = string(v)
		default:
			// A skynet node with another service under the reserved name
			// answers something else: still the protocol.
		}
		if peer != "" && peer != n.name {
			return nil, newNodeError(ErrWrongNode, nil,
				"skycall: %s answered as node %q, not %q; the registry entry for %q points at the wrong node", addr, peer, n.name, n.name)
		}
		if len(vals) > 1 {
			got, _ := vals[1].(string)
			if b, ok := vals[1].([]byte); ok {
				got = string(b)
			}
			if got != "" && incarnation != "" && got != incarnation {
				return nil, newNodeError(ErrWrongNode, nil,
					"skycall: %s answered as incarnation %q of node %q, but the registry names incarnation %q: the pod was replaced and the registry or the address is behind; retrying",
					addr, got, n.name, incarnation)
			}
			if got != "" {
				incarnation = got
			}
		}
	}
	if !stop() {
		return fail(fmt.Errorf("confirming %s: %w", addr, ctx.Err()))
	}
	_ = nc.SetDeadline(time.Time{})
	if n.c.opts.tlsNodeIdentity {
		if err := n.checkCertIdentity(nc, addr); err != nil {
			return nil, err
		}
	}
	return newNodeConn(n, nc, addr, peer, incarnation, dec), nil
}

// roundTrip writes one request to handle (0: the node query) and reads
// its answer, which must be for the request's session; what names the
// request in errors.
func (n *node) roundTrip(nc net.Conn, dec *wire.ResponseDecoder, handle uint32, payload []byte, what string) (*wire.Response, error) {
	n.mu.Lock()
	session := n.sessions.Next()
	n.mu.Unlock()
	if _, err := nc.Write(appendRequest(nil, &message{addr: handle}, body{payload: payload}, session)); err != nil {
		return nil, err
	}
	resp, err := dec.Next()
	if err != nil {
		return nil, fmt.Errorf("no answer to %s: %w", what, err)
	}
	if resp.Session != session {
		return nil, fmt.Errorf("answer for session %d, want %d: not a skynet cluster peer", resp.Session, session)
	}
	return resp, nil
}

// askHandle calls the skynet service at handle with query (the second
// round trip of a confirmation, see confirm) and returns its answer.
func (n *node) askHandle(nc net.Conn, dec *wire.ResponseDecoder, handle uint32, query []byte) ([]any, error) {
	resp, err := n.roundTrip(nc, dec, handle, query, fmt.Sprintf("the node's confirmation service :%08x", handle))
	if err != nil {
		return nil, err
	}
	if !resp.OK {
		// Another service took the reserved name: skynet's error text.
		n.log.Info("The node's confirmation service did not answer; checking the peer by address only", "handle", handle, "answer", string(resp.Payload))
		return []any{nil}, nil
	}
	vals, err := luaseri.Unpack(resp.Payload)
	if err != nil || len(vals) == 0 {
		return nil, fmt.Errorf("unreadable answer from the node's confirmation service :%08x: %v", handle, err)
	}
	return vals, nil
}

// checkCertIdentity makes sure the certificate the peer presented names
// this node, whatever name it answered to the node query.
func (n *node) checkCertIdentity(nc net.Conn, addr string) error {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return fmt.Errorf("skycall: node %q at %s: mutual TLS is on but the connection is not TLS", n.name, addr)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 || !tlsfiles.NamesNode(certs[0], n.name) {
		var names []string
		if len(certs) > 0 {
			names = certs[0].DNSNames
			for _, u := range certs[0].URIs {
				names = append(names, u.String())
			}
		}
		return newNodeError(ErrWrongNode, nil,
			"skycall: %s presented a certificate for %v, which does not name node %q (want a DNS SAN %q or a URI SAN skycall://%s)",
			addr, names, n.name, n.name, n.name)
	}
	return nil
}
