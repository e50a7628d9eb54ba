package sender

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
)

// ctTimeout bounds every wait in the client tests.
const ctTimeout = 10 * time.Second

func ctCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), ctTimeout)
	t.Cleanup(cancel)
	return ctx
}

// ctPeer is a skycall Server on loopback with recording services:
//
//	@rec   records the payload (as a string) and echoes it
//	@slow  records, then waits for release (or its ctx) before echoing
//	@fail  replies with the error "boom: <payload>"
type ctPeer struct {
	t       *testing.T
	name    string
	srv     *server.Server
	metrics *prometheus.Registry // the Server's
	addr    string
	mu      sync.Mutex
	got     []string
	release chan struct{}
	slowIn  atomic.Int32
	firstAt atomic.Int64 // UnixNano of the first message received
}

func ctServe(t *testing.T, nodeName string) *ctPeer {
	t.Helper()
	return ctServeAt(t, nodeName, "127.0.0.1:0")
}

func ctServeAt(t *testing.T, nodeName, addr string, opts ...server.Option) *ctPeer {
	t.Helper()
	p := &ctPeer{t: t, name: nodeName, metrics: prometheus.NewRegistry(), release: make(chan struct{})}
	p.srv = server.New(nodeName, append(opts, server.WithRegisterer(p.metrics))...)
	rec := func(_ context.Context, req *server.Request) ([]byte, error) {
		p.firstAt.CompareAndSwap(0, time.Now().UnixNano())
		p.mu.Lock()
		p.got = append(p.got, string(req.Payload))
		p.mu.Unlock()
		return req.Payload, nil
	}
	p.must(p.srv.HandleFunc("@rec", rec))
	p.must(p.srv.HandleFunc("@slow", func(ctx context.Context, req *server.Request) ([]byte, error) {
		rec(ctx, req)
		p.slowIn.Add(1)
		select {
		case <-p.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return req.Payload, nil
	}, server.WithConcurrent()))
	p.must(p.srv.HandleFunc("@fail", func(_ context.Context, req *server.Request) ([]byte, error) {
		return nil, errors.New("boom: " + string(req.Payload))
	}))
	var l net.Listener
	var err error
	deadline := time.Now().Add(ctTimeout)
	for {
		// Re-listening on a port just closed can race the kernel briefly.
		if l, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	go p.srv.Serve(l)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func (p *ctPeer) must(_ uint32, err error) {
	if err != nil {
		p.t.Fatal(err)
	}
}

func (p *ctPeer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// conns is how many connections the peer holds open.
func (p *ctPeer) conns() int {
	return int(testkit.MetricValue(p.t, p.metrics, "skycall_server_connections_open", nil))
}

func (p *ctPeer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// ctNewClient returns a Client on reg that logs to the test and is closed,
// leaving no goroutine, at cleanup.
func ctNewClient(t *testing.T, reg registry.Registry, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithLogger(testr.NewWithOptions(t, testr.Options{Verbosity: 1})), WithBackoff(5*time.Millisecond, 50*time.Millisecond)}, opts...)
	c := New(reg, opts...)
	t.Cleanup(func() {
		c.Close()
		testkit.Eventually(t, "no goroutine of the Client is left", func() bool { return ctClientGoroutines() == 0 })
	})
	return c
}

// ctClientGoroutines counts goroutines running Client code.
func ctClientGoroutines() int {
	return len(testkit.Goroutines("skycall/sender.(*node).", "skycall/sender.(*nodeConn).", "skycall/sender.(*Client)."))
}

// ctSendAll sends each of msgs to node's @rec, in order, failing the test
// on the first error.
func ctSendAll(t *testing.T, ctx context.Context, c *Client, node string, msgs []string) {
	t.Helper()
	for _, m := range msgs {
		if err := c.Send(ctx, node, "@rec", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

// ctQueued returns how many messages wait for node.
func ctQueued(c *Client, nodeName string) int {
	n := ctNode(c, nodeName)
	if n == nil {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.quota.msgs
}

// ctNode is the Client's node of that name, or nil before its first use.
func ctNode(c *Client, nodeName string) *node {
	v, ok := c.nodes.Load(nodeName)
	if !ok {
		return nil
	}
	return v.(*node)
}

func ctEqual(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d messages, want %d\ngot:  %q\nwant: %q", what, len(got), len(want), ctHead(got), ctHead(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: message %d is %q, want %q\ngot:  %q\nwant: %q", what, i, got[i], want[i], ctHead(got), ctHead(want))
		}
	}
}

func ctHead(s []string) []string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}

// ctSkynetPeer is a minimal skynet-like receiver: it answers every query
// with "name not found", as a real skynet node answers the node query, and
// echoes calls. It counts connections.
type ctSkynetPeer struct {
	addr  string
	conns atomic.Int32
}

func ctServeSkynet(t *testing.T) *ctSkynetPeer {
	t.Helper()
	p := &ctSkynetPeer{}
	p.addr = ctListen(t, func(nc net.Conn) {
		p.conns.Add(1)
		dec := wire.NewRequestDecoder(bufio.NewReader(nc), wire.Limits{})
		for {
			req, err := dec.Next()
			if err != nil {
				return
			}
			if req.Push {
				continue
			}
			resp := &wire.Response{Session: req.Session, OK: true, Payload: req.Payload}
			if req.Address == 0 && req.Name == "" {
				resp = &wire.Response{Session: req.Session, Payload: []byte("name not found")}
			}
			if _, err := nc.Write(wire.AppendResponse(nil, resp)); err != nil {
				return
			}
		}
	})
	return p
}

// ctListen accepts TCP connections on loopback and runs serve for each in
// its own goroutine, closing the connection when serve returns; at cleanup
// it closes the listener and every connection, and waits for them.
func ctListen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards open
	var open []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				serve(nc)
			}()
		}
	}()
	return l.Addr().String()
}
