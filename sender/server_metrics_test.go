package sender

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender/wire"
)

// srvMetricValue reads one series of the Server's metrics: a counter's or
// gauge's value, a histogram's sample count; -1 when absent.
func srvMetricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	s := ctSeries(t, g, name, labels)
	if len(s) != 1 {
		return -1
	}
	return ctValue(s[0])
}

func TestServerMetricsPerService(t *testing.T) {
	promReg := prometheus.NewPedanticRegistry()
	const limit = 1 << 10
	s := NewServer("node-a", ServerRegisterer(promReg), ServerMaxMessageSize(limit))
	srvMustHandle(t, s, "@echo", srvEcho)
	pushed := make(chan struct{}, 2)
	srvMustHandle(t, s, "@sink", func(context.Context, *Request) ([]byte, error) { pushed <- struct{}{}; return nil, nil })
	srvMustHandle(t, s, "@fail", func(context.Context, *Request) ([]byte, error) { return nil, errors.New("no") })
	block, blocked := make(chan struct{}), make(chan struct{}, 1)
	srvMustHandle(t, s, "@slow", func(context.Context, *Request) ([]byte, error) {
		blocked <- struct{}{}
		<-block
		return nil, nil
	})
	addr, _ := srvServe(t, s)
	c := srvDial(t, addr)

	for range 3 {
		if resp := c.call(wire.Request{Name: "@echo", Payload: []byte("hello")}); !resp.OK {
			t.Fatalf("@echo: %+v", resp)
		}
	}
	c.send(wire.Request{Name: "@sink", Push: true, Payload: []byte("p1")})
	c.send(wire.Request{Name: "@sink", Push: true, Payload: []byte("p2")})
	srvRecv(t, "push 1", pushed)
	srvRecv(t, "push 2", pushed)
	if resp := c.call(wire.Request{Name: "@fail"}); resp.OK {
		t.Fatal("@fail succeeded")
	}
	if resp := c.call(wire.Request{Name: "@nobody"}); resp.OK {
		t.Fatal("an unknown name succeeded")
	}
	if resp := c.call(wire.Request{Name: "@echo", Payload: srvPattern(limit + 1)}); resp.OK {
		t.Fatal("a request over the limit succeeded")
	}
	c.writeRaw(srvFrame(0x07, 1, 2, 3)) // an unknown frame type
	// A second connection, and a handler held so that its queue shows.
	c2 := srvDial(t, addr)
	c2.send(wire.Request{Name: "@slow", Session: 1})
	srvRecv(t, "@slow running", blocked)
	c2.send(wire.Request{Name: "@slow", Session: 2})

	eventually(t, "the Server's metrics", func() bool {
		return srvMetricValue(t, promReg, "skycall_server_rejected_total", map[string]string{"reason": "malformed"}) == 1 &&
			srvMetricValue(t, promReg, "skycall_server_queue_messages", map[string]string{"service": "@slow"}) == 1
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
		if got := srvMetricValue(t, promReg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	close(block)
	c2.nc.Close()
	eventually(t, "the closed connection leaves connections_open", func() bool {
		return srvMetricValue(t, promReg, "skycall_server_connections_open", nil) == 1
	})

	// Close unregisters: another Server may register with the same registry.
	s.Close()
	s2 := NewServer("node-b", ServerRegisterer(promReg))
	defer s2.Close()
	if s2.opts.registerer == nil {
		t.Fatal("a second Server could not register after the first closed")
	}
}
