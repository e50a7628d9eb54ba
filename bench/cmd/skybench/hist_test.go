package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistIndexIsMonotonicAndTight(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<22; v += 1 + v/97 {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index of %d is %d, below the index %d of a smaller value", v, i, prev)
		}
		prev = i
		if got := histValue(i); v >= 128 && (float64(got) < float64(v)*0.98 || float64(got) > float64(v)*1.02) {
			t.Fatalf("value %d lands in a bucket whose middle is %d: more than 2%% off", v, got)
		}
	}
}

func TestHistQuantilesMatchSortedSamples(t *testing.T) {
	var h hist
	samples := make([]time.Duration, 10000)
	for i := range samples {
		samples[i] = time.Duration(rand.ExpFloat64() * float64(50*time.Microsecond))
		h.record(samples[i])
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.99} {
		want := samples[int(q*float64(len(samples)-1))]
		got := h.quantile(q)
		if d := float64(got-want) / float64(want); d < -0.03 || d > 0.03 {
			t.Errorf("p%v = %v, sorted samples say %v", q*100, got, want)
		}
	}
}
