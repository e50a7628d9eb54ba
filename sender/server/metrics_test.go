package server

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/wire"
)

func TestServerMetricsPerService(t *testing.T) {
	promReg := prometheus.NewPedanticRegistry()
	const limit = 1 << 10
	s := New("node-a", WithRegisterer(promReg), WithMaxMessageSize(limit))
	mustHandle(t, s, "@echo", echo)
	pushed := make(chan struct{}, 2)
	mustHandle(t, s, "@sink", func(context.Context, *Request) ([]byte, error) { pushed <- struct{}{}; return nil, nil })
	mustHandle(t, s, "@fail", func(context.Context, *Request) ([]byte, error) { return nil, errors.New("no") })
	block, blocked := make(chan struct{}), make(chan struct{}, 1)
	mustHandle(t, s, "@slow", func(context.Context, *Request) ([]byte, error) {
		blocked <- struct{}{}
		<-block
		return nil, nil
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	for range 3 {
		if resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("hello")}); !resp.OK {
			t.Fatalf("@echo: %+v", resp)
		}
	}
	c.Send(wire.Request{Name: "@sink", Push: true, Payload: []byte("p1")})
	c.Send(wire.Request{Name: "@sink", Push: true, Payload: []byte("p2")})
	testkit.Recv(t, "push 1", pushed)
	testkit.Recv(t, "push 2", pushed)
	if resp := c.Call(wire.Request{Name: "@fail"}); resp.OK {
		t.Fatal("@fail succeeded")
	}
	if resp := c.Call(wire.Request{Name: "@nobody"}); resp.OK {
		t.Fatal("an unknown name succeeded")
	}
	if resp := c.Call(wire.Request{Name: "@echo", Payload: pattern(limit + 1)}); resp.OK {
		t.Fatal("a request over the limit succeeded")
	}
	c.WriteRaw(frame(0x07, 1, 2, 3)) // an unknown frame type
	// A second connection, and a handler held so that its queue shows.
	c2 := testkit.Dial(t, addr)
	c2.Send(wire.Request{Name: "@slow", Session: 1})
	testkit.Recv(t, "@slow running", blocked)
	c2.Send(wire.Request{Name: "@slow", Session: 2})

	testkit.Eventually(t, "the Server's metrics", func() bool {
		return testkit.MetricValue(t, promReg, "skycall_server_rejected_total", map[string]string{"reason": "malformed"}) == 1 &&
			testkit.MetricValue(t, promReg, "skycall_server_queue_messages", map[string]string{"service": "@slow"}) == 1
	})
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"skycall_server_messages_total", map[string]string{"service": "@echo", "kind": "call", "result": "ok"}, 3},
		{"skycall_server_messages_total", map[string]string{"service": "@sink", "kind": "push", "result": "ok"}, 2},
		{"skycall_server_messages_total", map[string]string{"service": "@fail", "kind": "call", "result": "error"}, 1},
		{"skycall_server_handler_duration_seconds", map[string]string{"service": "@echo", "kind": "call"}, 3},
		{"skycall_server_handler_duration_seconds", map[string]string{"service": "@sink", "kind": "push"}, 2},
		{"skycall_server_request_bytes_total", map[string]string{"service": "@echo"}, 15},
		{"skycall_server_reply_bytes_total", map[string]string{"service": "@echo"}, 15},
		{"skycall_server_request_bytes_total", map[string]string{"service": "@sink"}, 4},
		{"skycall_server_rejected_total", map[string]string{"reason": "unknown_name"}, 1},
		{"skycall_server_rejected_total", map[string]string{"reason": "too_large"}, 1},
		{"skycall_server_rejected_total", map[string]string{"reason": "malformed"}, 1},
		{"skycall_server_queue_messages", map[string]string{"service": "@slow"}, 1},
		{"skycall_server_queue_messages", map[string]string{"service": "@echo"}, 0},
		{"skycall_server_connections_open", nil, 2},
	} {
		if got := testkit.MetricValue(t, promReg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	close(block)
	c2.Conn.Close()
	testkit.Eventually(t, "the closed connection leaves connections_open", func() bool {
		return testkit.MetricValue(t, promReg, "skycall_server_connections_open", nil) == 1
	})

	// Close unregisters: another Server may register with the same registry.
	s.Close()
	s2 := New("node-b", WithRegisterer(promReg))
	defer s2.Close()
	if s2.opts.registerer == nil {
		t.Fatal("a second Server could not register after the first closed")
	}
}
