package sender

import (
	"testing"
	"time"
)

func TestBackoffDelayGrowsThenCaps(t *testing.T) {
	const base, max = 100 * time.Millisecond, 2 * time.Second
	tests := []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{
		{attempt: 1, jitter: 0.5, want: 100 * time.Millisecond}, // 0.5: no jitter
		{attempt: 2, jitter: 0.5, want: 160 * time.Millisecond},
		{attempt: 3, jitter: 0.5, want: 256 * time.Millisecond},
		{attempt: 7, jitter: 0.5, want: 1677721600},      // 100ms × 1.6^6
		{attempt: 8, jitter: 0.5, want: 2 * time.Second}, // capped
		{attempt: 1000, jitter: 0.5, want: 2 * time.Second},
		{attempt: 1, jitter: 0, want: 80 * time.Millisecond}, // -20%
		{attempt: 8, jitter: 0, want: 1600 * time.Millisecond},
		{attempt: 8, jitter: 0.999999, want: 2399999200}, // just under +20%
	}
	for _, tt := range tests {
		got := backoffDelay(tt.attempt, base, max, tt.jitter)
		if diff := got - tt.want; diff < -time.Microsecond || diff > time.Microsecond {
			t.Errorf("backoffDelay(%d, jitter %v) = %v, want %v", tt.attempt, tt.jitter, got, tt.want)
		}
	}
}

func TestRedialFailedSetsRetryAndResetClearsIt(t *testing.T) {
	var r redial
	now := time.Unix(1000, 0)
	if w := r.wait(now); w > 0 {
		t.Fatalf("fresh redial waits %v, want 0", w)
	}
	d1 := r.failed(now, time.Second, time.Minute, 0.5)
	d2 := r.failed(now, time.Second, time.Minute, 0.5)
	if d1 != time.Second || d2 != 1600*time.Millisecond {
		t.Fatalf("delays %v, %v; want 1s, 1.6s", d1, d2)
	}
	if w := r.wait(now); w != d2 {
		t.Fatalf("wait after two failures = %v, want %v", w, d2)
	}
	r.reset()
	if w := r.wait(now); w > 0 || r.attempt != 0 {
		t.Fatalf("after reset: wait %v, attempt %d; want 0, 0", w, r.attempt)
	}
}
