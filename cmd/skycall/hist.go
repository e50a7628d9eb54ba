package main

import (
	"math"
	"math/bits"
	"time"
)

// hist is a latency histogram with bounded memory whatever the run's
// length: logarithmic buckets with 32 steps per power of two (values are
// placed within about 3%), exact below 32 ns; count, sum, min and max exact.
type hist struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

const (
	histSub     = 32 // buckets per power of two
	histBuckets = 60 * histSub
)

func histIndex(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - 6 // keep the leading 1 and 5 more bits
	return (e+1)*histSub + int(v>>e) - histSub
}

// histBounds is the range of values bucket i holds.
func histBounds(i int) (lo, hi time.Duration) {
	if i < histSub {
		return time.Duration(i), time.Duration(i)
	}
	e := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return time.Duration(m << e), time.Duration((m+1)<<e - 1)
}

func (h *hist) add(d time.Duration) {
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
	h.counts[histIndex(d)]++
}

func (h *hist) merge(o *hist) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// quantile returns the value below which a fraction q of the samples lie:
// the middle of its bucket, kept within [min, max].
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	if rank >= h.n {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			return min(max(lo+(hi-lo)/2, h.min), h.max)
		}
	}
	return h.max
}

// linear regroups the samples into n equal-width bars from min to max, as
// ghz draws its histogram; each bar is labelled by its upper edge.
func (h *hist) linear(n int) (edges []time.Duration, counts []uint64) {
	if h.n == 0 {
		return nil, nil
	}
	width := (h.max - h.min) / time.Duration(n)
	if width <= 0 {
		return []time.Duration{h.max}, []uint64{h.n}
	}
	edges = make([]time.Duration, n)
	counts = make([]uint64, n)
	for i := range edges {
		edges[i] = h.min + width*time.Duration(i+1)
	}
	edges[n-1] = h.max
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		lo, hi := histBounds(i)
		mid := min(max(lo+(hi-lo)/2, h.min), h.max)
		bar := min(int((mid-h.min)/width), n-1)
		counts[bar] += c
	}
	return edges, counts
}
