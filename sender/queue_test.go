package sender

import "testing"

func TestQuotaAdmitsUnderLimitsAndAnyMessageWhenEmpty(t *testing.T) {
	var q quota
	if !q.admits(1000, 2, 10) {
		t.Fatal("an empty queue must admit a message over the byte limit")
	}
	q.add(1000)
	if q.admits(1, 2, 10) {
		t.Fatal("admitted over the byte limit")
	}
	q.release(1, 1000)
	q.add(4)
	q.add(4)
	if q.admits(1, 2, 10) {
		t.Fatal("admitted over the message limit")
	}
}

func TestQuotaReleaseWakesWaiters(t *testing.T) {
	var q quota
	q.add(5)
	space := q.wait()
	q.release(1, 5)
	select {
	case <-space:
	default:
		t.Fatal("release did not wake the waiter")
	}
	if q.msgs != 0 || q.bytes != 0 {
		t.Fatalf("quota %d msgs %d bytes after release", q.msgs, q.bytes)
	}
}

func TestFifoCancelSkipsAndCompacts(t *testing.T) {
	var f fifo
	var all []*queued
	for i := 0; i < 200; i++ {
		m := &queued{size: i}
		all = append(all, m)
		f.push(m)
	}
	for i := 0; i < 150; i++ {
		f.cancel(all[i])
	}
	if f.n >= 200 {
		t.Fatalf("ring not compacted: %d entries", f.n)
	}
	var live []int
	f.each(func(m *queued) { live = append(live, m.size) })
	if len(live) != 50 || live[0] != 150 || live[49] != 199 {
		t.Fatalf("live entries %v", live)
	}
}
