package sender

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
)

func TestCallDurationIsObservedByNodeAndResult(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(map[string]string{"db": peer.addr})
	promReg := prometheus.NewPedanticRegistry()
	c := ctNewClient(t, reg, WithRegisterer(promReg))
	ctx := ctCtx(t)
	for range 3 {
		if _, err := c.Call(ctx, "db", "@rec", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Call(ctx, "db", "@fail", []byte("x")); err == nil {
		t.Fatal("@fail succeeded")
	}
	// A node the registry does not know: the call waits for it, until its
	// deadline.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Call(short, "ghost", "@rec", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call to an unknown node: %v, want its deadline exceeded", err)
	}
	for _, tc := range []struct {
		node, result string
		count        uint64
	}{{"db", "ok", 3}, {"db", "remote_error", 1}, {"ghost", "deadline_exceeded", 1}} {
		s := testkit.Series(t, promReg, "skycall_sender_call_duration_seconds", map[string]string{"node": tc.node, "result": tc.result})
		if len(s) != 1 || s[0].GetHistogram().GetSampleCount() != tc.count || s[0].GetHistogram().GetSampleSum() <= 0 {
			t.Errorf("call_duration_seconds{node=%s,result=%s} = %v, want %d samples with a positive sum", tc.node, tc.result, s, tc.count)
		}
	}
}

func TestMetricsWithoutNodeLabelSumOverNodes(t *testing.T) {
	db, store := ctServe(t, "db"), ctServe(t, "store")
	reg := registry.NewStatic(map[string]string{"db": db.addr, "store": store.addr})
	reg.SetNotReady("later", "")
	promReg := prometheus.NewPedanticRegistry()
	c := ctNewClient(t, reg, WithRegisterer(promReg), WithMetricsNodeLabel(false))
	ctx := ctCtx(t)
	for _, n := range []string{"db", "store", "db", "store"} {
		if _, err := c.Call(ctx, n, "@rec", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Send(ctx, "later", "@rec", []byte("queued")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"skycall_sender_calls_total", "skycall_sender_call_duration_seconds", "skycall_sender_node_state", "skycall_sender_queue_messages"} {
		if s := testkit.Series(t, promReg, name, nil); len(s) == 0 {
			t.Errorf("%s: no series", name)
		}
		if s := testkit.Series(t, promReg, name, map[string]string{"node": ""}); len(s) != len(testkit.Series(t, promReg, name, nil)) {
			t.Errorf("%s: some series carry a node label with WithMetricsNodeLabel(false)", name)
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"skycall_sender_calls_total", map[string]string{"result": "ok"}, 4},
		{"skycall_sender_node_state", map[string]string{"state": "ready"}, 2},
		{"skycall_sender_node_state", map[string]string{"state": "resolving"}, 1},
		{"skycall_sender_queue_messages", nil, 1},
		{"skycall_sender_call_duration_seconds", map[string]string{"result": "ok"}, 4},
	}
	for _, ch := range checks {
		s := testkit.Series(t, promReg, ch.name, ch.labels)
		if len(s) != 1 || testkit.Value(s[0]) != ch.want {
			t.Errorf("%s%v = %v, want one series of %v", ch.name, ch.labels, s, ch.want)
		}
	}
}
