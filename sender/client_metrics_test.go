package sender

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
)

// ctCounter reads one counter of c's metrics: name, labelled node and, if
// second is not empty, with second as its other label's value (0 if absent).
func ctCounter(t *testing.T, c *Client, name, nodeName, second string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c.metrics); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if ctLabelsMatch(m, nodeName, second) {
				total += testkit.Value(m)
			}
		}
	}
	return total
}

func ctLabelsMatch(m *dto.Metric, nodeName, second string) bool {
	okNode, okSecond := false, second == ""
	for _, l := range m.GetLabel() {
		if l.GetName() == "node" {
			okNode = l.GetValue() == nodeName
		} else if l.GetValue() == second {
			okSecond = true
		}
	}
	return okNode && okSecond
}

func TestMetricsPerNode(t *testing.T) {
	peer := ctServe(t, "db")
	reg := registry.NewStatic(map[string]string{"db": peer.addr})
	reg.SetNotReady("later", "")
	promReg := prometheus.NewPedanticRegistry()
	c := ctNewClient(t, reg, WithRegisterer(promReg))
	ctx := ctCtx(t)
	for i := 0; i < 5; i++ {
		if _, err := c.Call(ctx, "db", "@rec", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.Call(ctx, "db", "@fail", []byte("x"))
	if err := c.Send(ctx, "later", "@rec", []byte("queued")); err != nil {
		t.Fatal(err)
	}
	// The writer counts a batch after its Write returns, which may be after
	// the reply arrived.
	testkit.Eventually(t, "six messages counted as written", func() bool {
		return ctCounter(t, c, "skycall_sender_written_messages_total", "db", "") == 6
	})
	families, err := promReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	get := func(name, nodeName, second string) (float64, bool) {
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if ctLabelsMatch(m, nodeName, second) {
					return testkit.Value(m), true
				}
			}
		}
		return 0, false
	}
	checks := []struct {
		name, node, second string
		want               float64
	}{
		{"skycall_sender_node_state", "db", "ready", 1},
		{"skycall_sender_node_state", "db", "resolving", 0},
		{"skycall_sender_node_state", "later", "resolving", 1},
		{"skycall_sender_queue_messages", "later", "", 1},
		{"skycall_sender_queue_messages", "db", "", 0},
		{"skycall_sender_calls_total", "db", "ok", 5},
		{"skycall_sender_calls_total", "db", "remote_error", 1},
		{"skycall_sender_written_messages_total", "db", "", 6},
	}
	for _, ch := range checks {
		got, ok := get(ch.name, ch.node, ch.second)
		if !ok || got != ch.want {
			t.Errorf("%s{node=%q,%q} = %v (found %v), want %v", ch.name, ch.node, ch.second, got, ok, ch.want)
		}
	}
	if v, ok := get("skycall_sender_written_bytes_total", "db", ""); !ok || v == 0 {
		t.Errorf("written bytes not counted")
	}
	c.Close()
	// Close unregisters: a new Client may register with the same registry.
	c2 := New(reg, WithRegisterer(promReg))
	defer c2.Close()
	if c2.opts.registerer == nil {
		t.Fatal("a second Client could not register after the first closed")
	}
}

func TestTwoClientsWithoutRegistererDoNotCollide(t *testing.T) {
	reg := registry.NewStatic(nil)
	a := New(reg)
	b := New(reg)
	a.Close()
	b.Close()
}
