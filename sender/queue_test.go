package sender

import "testing"

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
