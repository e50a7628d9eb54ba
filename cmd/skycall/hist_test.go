package main

import (
	"testing"
	"time"
)

// TestHistogramPercentilesAreWithinABucket: the percentiles bench prints
// are within the histogram's 3% resolution of the exact ones, and the
// bars hold every sample.
func TestHistogramPercentilesAreWithinABucket(t *testing.T) {
	var h hist
	// 1..10000 µs, each once: the exact q-quantile is q*10000 µs.
	for i := 1; i <= 10000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{.1, .5, .9, .99, .999} {
		exact := time.Duration(q*10000) * time.Microsecond
		got := h.quantile(q)
		if diff := (got - exact).Seconds() / exact.Seconds(); diff > .035 || diff < -.035 {
			t.Errorf("p%v = %v, exact %v (off by %.1f%%)", q*100, got, exact, diff*100)
		}
	}
	if h.min != time.Microsecond || h.max != 10*time.Millisecond || h.mean() != 5000500*time.Nanosecond {
		t.Errorf("min %v max %v mean %v", h.min, h.max, h.mean())
	}
	edges, counts := h.linear(10)
	var n uint64
	for _, c := range counts {
		n += c
	}
	if len(edges) != 10 || edges[9] != h.max || n != 10000 {
		t.Errorf("bars %v %v hold %d samples", edges, counts, n)
	}

	var merged hist
	merged.merge(&h)
	merged.merge(&hist{})
	if merged.n != h.n || merged.quantile(.5) != h.quantile(.5) {
		t.Errorf("merge changed the histogram")
	}
	// Extremes stay in range.
	var x hist
	x.add(0)
	x.add(time.Duration(1<<63 - 1))
	if x.quantile(1) != time.Duration(1<<63-1) || x.quantile(0) != 0 {
		t.Errorf("extremes: %v %v", x.quantile(0), x.quantile(1))
	}
}
