package sender

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
)

// ctWatchCounter counts the registry watches the Client holds open.
type ctWatchCounter struct {
	registry.Registry
	opened atomic.Int64 // ever
	open   atomic.Int64 // now
}

func (r *ctWatchCounter) Watch(node string, notify func()) func() {
	stop := r.Registry.Watch(node, notify)
	r.opened.Add(1)
	r.open.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			r.open.Add(-1)
			stop()
		})
	}
}

func TestIdleClockCountsFromTheLastCheckThatSawUse(t *testing.T) {
	var k idleClock
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at    time.Duration
		touch bool
		busy  bool
		want  time.Duration
	}{
		{at: 0, want: 0}, // first check starts the clock
		{at: 10 * time.Second, want: 10 * time.Second}, // unused since
		{at: 11 * time.Second, touch: true, want: 0},   // a message since the last check
		{at: 15 * time.Second, want: 4 * time.Second},  // counted from the check that saw it
		{at: 20 * time.Second, busy: true, want: 0},    // a call in flight
		{at: 90 * time.Second, want: 70 * time.Second}, // idle again
		{at: 91 * time.Second, touch: true, busy: true, want: 0},
	}
	for _, st := range steps {
		if st.touch {
			k.touch()
		}
		if got := k.check(st.busy, t0.Add(st.at)); got != st.want {
			t.Fatalf("at %v: idle %v, want %v", st.at, got, st.want)
		}
	}
}

// ctNodeSeries counts the metric series labelled with a node.
func ctNodeSeries(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" {
					count++
				}
			}
		}
	}
	return count
}

// ctNodeGoroutines counts the goroutines of nodes and their connections;
// without nodes there are none (the Client's own sweepers remain).
func ctNodeGoroutines() int {
	return len(testkit.Goroutines("skycall/sender.(*node).", "skycall/sender.(*nodeConn)."))
}

func ctNodeCount(c *Client) int {
	count := 0
	c.nodes.Range(func(_, _ any) bool { count++; return true })
	return count
}

// A Client used with 10,000 node names nobody serves (a mistyped or retired
// name each) forgets every one of them once idle: no goroutine, registry
// watch or metric series is left. A node in use that went idle is forgotten
// too, and the next messages to it start it afresh and arrive in order.
func TestIdleNodesAreForgottenAndComeBackInOrder(t *testing.T) {
	peer := ctServe(t, "db")
	static := registry.NewStatic(map[string]string{"db": peer.addr})
	static.SetNoWait(true) // unknown names fail at once instead of waiting
	reg := &ctWatchCounter{Registry: static}
	prom := prometheus.NewPedanticRegistry()
	c := ctNewClient(t, reg, WithRegisterer(prom), WithNodeIdleTimeout(time.Second),
		WithLogger(logr.Discard())) // 10,000 nodes' transitions would flood the test log
	ctx := ctCtx(t)

	before := testkit.Seq("before", 20)
	for _, p := range before[:10] {
		if err := c.Send(ctx, "db", "@rec", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range before[10:] {
		if _, err := c.Call(ctx, "db", "@rec", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	const names = 10000
	for i := range names {
		name := fmt.Sprintf("gone-%d", i)
		var err error
		if i%2 == 0 {
			err = c.Send(ctx, name, "@rec", []byte("lost"))
		} else {
			_, err = c.Call(ctx, name, "@rec", []byte("lost"))
		}
		if !errors.Is(err, ErrUnknownNode) {
			t.Fatalf("message to %s: %v, want ErrUnknownNode", name, err)
		}
		if i == 99 && ctNodeSeries(t, prom) < 100 {
			t.Fatal("the first nodes have no metric series to forget")
		}
	}
	// Nodes idle since the start of the loop may be forgotten already.
	if got := reg.opened.Load(); got != names+1 {
		t.Fatalf("%d registry watches opened, want one per node: %d", got, names+1)
	}
	if st := c.State(fmt.Sprintf("gone-%d", names-1)); st != StateResolving {
		t.Fatalf("node just used is %v, want resolving", st)
	}

	defer func() {
		if t.Failed() {
			t.Logf("nodes %d watches %d node goroutines %d series %d", ctNodeCount(c), reg.open.Load(), ctNodeGoroutines(), ctNodeSeries(t, prom))
		}
	}()
	testkit.Eventually(t, "every idle node is forgotten, with its goroutine, watch and metric series", func() bool {
		return ctNodeCount(c) == 0 && reg.open.Load() == 0 &&
			ctNodeGoroutines() == 0 && ctNodeSeries(t, prom) == 0
	})
	if st := c.State("db"); st != StateIdle {
		t.Fatalf("forgotten node in state %v, want idle", st)
	}

	// A Service bound before the node was forgotten follows the new one.
	svc := c.Service("db", "@rec")
	after := testkit.Seq("after", 20)
	for _, p := range after[:10] {
		if err := c.Send(ctx, "db", "@rec", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range after[10:] {
		if _, err := svc.Call(ctx, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	ctEqual(t, "messages received", peer.received(), append(before, after...))
	if st := c.State("db"); st != StateReady {
		t.Fatalf("node used again is %v, want ready", st)
	}
	if err := c.Send(ctx, "gone-0", "@rec", []byte("lost")); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("forgotten unknown node used again: %v, want ErrUnknownNode", err)
	}
}

// A node with a call in flight is not idle, however long the call takes.
func TestNodeWithCallInFlightIsNotForgotten(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}), WithNodeIdleTimeout(20*time.Millisecond))
	ctx := ctCtx(t)
	result := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "db", "@slow", []byte("long"))
		result <- err
	}()
	testkit.Eventually(t, "the call reached the server", func() bool { return peer.slowIn.Load() == 1 })
	// Ten idle periods pass (the sweeper runs four times per period) while
	// the call is in flight.
	sweeps := c.idleSweeps.Load()
	testkit.Eventually(t, "ten idle periods pass", func() bool { return c.idleSweeps.Load() >= sweeps+40 })
	if ctNodeCount(c) != 1 || c.State("db") != StateReady {
		t.Fatalf("node with a call in flight forgotten (state %v)", c.State("db"))
	}
	close(peer.release)
	if err := <-result; err != nil {
		t.Fatalf("call in flight: %v", err)
	}
	testkit.Eventually(t, "the node is forgotten once idle", func() bool { return ctNodeCount(c) == 0 })
}
