package main

import (
	"fmt"
	"sync"
	"time"
)

// result is one measurement of one system in one round.
type result struct {
	ops      int64         // completed calls, round trips or delivered messages
	elapsed  time.Duration // from the start to the last completion
	payload  int           // payload bytes per op, for MB/s
	p50, p99 time.Duration // zero when latency is not measured
	lost     int64         // sends not confirmed by the final call
	err      error
}

func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// mbps is payload megabytes (10^6) per second, one way.
func (r result) mbps() float64 { return r.rate() * float64(r.payload) / 1e6 }

// closedLoop runs conc goroutines, each calling op back to back for d, and
// measures every op's latency. Throughput counts from the common start to
// the last completion.
func closedLoop(conc int, d time.Duration, payload int, op func(worker int) error) result {
	hists := make([]hist, conc)
	counts := make([]int64, conc)
	errs := make([]error, conc)
	start := make(chan struct{})
	var wg sync.WaitGroup
	var t0 time.Time
	ends := make([]time.Time, conc)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			<-start
			deadline := t0.Add(d)
			h := &hists[w]
			var n int64
			now := time.Now()
			for now.Before(deadline) {
				if err := op(w); err != nil {
					errs[w] = err
					break
				}
				end := time.Now()
				h.record(end.Sub(now))
				n++
				now = end
			}
			counts[w] = n
			ends[w] = now
		}(w)
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	var all hist
	r := result{payload: payload}
	last := t0
	for w := range conc {
		all.merge(&hists[w])
		r.ops += counts[w]
		if ends[w].After(last) {
			last = ends[w]
		}
		if errs[w] != nil && r.err == nil {
			r.err = fmt.Errorf("worker %d after %d ops: %w", w, counts[w], errs[w])
		}
	}
	r.elapsed = last.Sub(t0)
	r.p50, r.p99 = all.quantile(0.50), all.quantile(0.99)
	return r
}

// sendLoop calls send back to back from one goroutine for d (at most limit
// times), then confirm, which must return how many of them arrived.
// Throughput counts delivered messages over the time from the first send
// to confirm's answer, so a sender that only queues gains nothing.
func sendLoop(d time.Duration, payload, limit int, send func() error, confirm func(sent int64) (int64, error)) result {
	r := result{payload: payload}
	t0 := time.Now()
	deadline := t0.Add(d)
	var sent int64
	for sent < int64(limit) {
		if sent&63 == 0 && !time.Now().Before(deadline) {
			break
		}
		if err := send(); err != nil {
			r.err = fmt.Errorf("send %d: %w", sent, err)
			break
		}
		sent++
	}
	got, err := confirm(sent)
	r.elapsed = time.Since(t0)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("final call after %d sends: %w", sent, err)
	}
	r.ops = got
	r.lost = sent - got
	return r
}
