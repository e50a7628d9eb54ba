package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
)

// preReady is one measurement of the pre-ready path: n Calls queued for a
// node the registry knows but that is not ready, then the node made ready.
type preReady struct {
	n        int
	drain    time.Duration // node made ready -> last queued call answered
	connect  time.Duration // connect+confirm: a fresh Client's first call, less a ready call
	burst    time.Duration // n Calls released at once on a ready connection -> last answer
	addedPer time.Duration // (drain - connect) / n
	readyPer time.Duration // burst / n
	err      error
}

// lastTime keeps the latest of the times stored into it.
type lastTime struct{ ns atomic.Int64 }

func (l *lastTime) mark() {
	now := time.Now().UnixNano()
	for {
		old := l.ns.Load()
		if now <= old || l.ns.CompareAndSwap(old, now) {
			return
		}
	}
}

func (l *lastTime) time() time.Time { return time.Unix(0, l.ns.Load()) }

// calls runs n Calls on n goroutines, started when start is closed, and
// returns when all have answered.
func calls(c *sender.Client, n int, payload []byte, start <-chan struct{}, launched *sync.WaitGroup) (last time.Time, err error) {
	var done sync.WaitGroup
	var lt lastTime
	var firstErr atomic.Pointer[error]
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			launched.Done()
			<-start
			if _, err := c.Call(context.Background(), skyNode, "@echo", payload); err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
			lt.mark()
		}()
	}
	done.Wait()
	if p := firstErr.Load(); p != nil {
		return time.Time{}, *p
	}
	return lt.time(), nil
}

// queueDepth reads skycall_sender_queue_messages for the benchmark node.
func queueDepth(g prometheus.Gatherer) (int, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "skycall_sender_queue_messages" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" && l.GetValue() == skyNode {
					return int(m.GetGauge().GetValue()), nil
				}
			}
		}
	}
	return 0, nil
}

func (s *skySys) preReady(n int) (r preReady) {
	r.n = n
	payload := make([]byte, 32)

	// n Calls queued against a known, not-ready node.
	reg := registry.NewStatic(map[string]string{skyNode: ""})
	pr := prometheus.NewRegistry()
	c := sender.New(reg, sender.WithRegisterer(pr))
	defer c.Close()
	open := make(chan struct{})
	close(open)
	var launched sync.WaitGroup
	launched.Add(n)
	type out struct {
		last time.Time
		err  error
	}
	res := make(chan out, 1)
	go func() {
		last, err := calls(c, n, payload, open, &launched)
		res <- out{last, err}
	}()
	launched.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		depth, err := queueDepth(pr)
		if err != nil {
			r.err = err
			return r
		}
		if depth == n {
			break
		}
		if time.Now().After(deadline) {
			r.err = fmt.Errorf("only %d of %d calls queued after 30s", depth, n)
			return r
		}
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	reg.Set(skyNode, s.addr)
	o := <-res
	if o.err != nil {
		r.err = fmt.Errorf("queued call: %w", o.err)
		return r
	}
	r.drain = o.last.Sub(t0)

	// connect+confirm on a fresh Client to the ready node, less the
	// latency of a call on a ready connection (median of 51).
	c2 := sender.New(registry.NewStatic(map[string]string{skyNode: s.addr}))
	defer c2.Close()
	t1 := time.Now()
	if _, err := c2.Call(context.Background(), skyNode, "@echo", payload); err != nil {
		r.err = fmt.Errorf("first call: %w", err)
		return r
	}
	first := time.Since(t1)
	lat := make([]time.Duration, 51)
	for i := range lat {
		t := time.Now()
		if _, err := c2.Call(context.Background(), skyNode, "@echo", payload); err != nil {
			r.err = err
			return r
		}
		lat[i] = time.Since(t)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.connect = first - lat[len(lat)/2]
	if r.connect < 0 {
		r.connect = 0
	}

	// The same n Calls, released at once on the ready connection.
	start := make(chan struct{})
	launched.Add(n)
	go func() {
		last, err := calls(c2, n, payload, start, &launched)
		res <- out{last, err}
	}()
	launched.Wait()
	time.Sleep(10 * time.Millisecond) // let the goroutines park on start
	t2 := time.Now()
	close(start)
	o = <-res
	if o.err != nil {
		r.err = fmt.Errorf("ready burst: %w", o.err)
		return r
	}
	r.burst = o.last.Sub(t2)
	r.addedPer = (r.drain - r.connect) / time.Duration(n)
	r.readyPer = r.burst / time.Duration(n)
	return r
}
