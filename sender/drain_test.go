package sender

import (
	"testing"
	"time"
)

func TestDrainSetRemovesOnceAndStopsTimers(t *testing.T) {
	fired := make(chan *nodeConn, 2)
	newConn := func() *nodeConn {
		c := &nodeConn{}
		c.drain.timer = time.AfterFunc(time.Hour, func() { fired <- c })
		return c
	}
	var d drainSet
	a, b := newConn(), newConn()
	d.add(a)
	d.add(b)
	if !d.has(a) || !d.has(b) {
		t.Fatal("added connections are not draining")
	}
	if !d.remove(a) || d.remove(a) {
		t.Fatal("remove must report true once, then false")
	}
	if a.drain.timer.Stop() {
		t.Fatal("remove left the drain timer running")
	}
	got := d.detachAll()
	if len(got) != 1 || got[0] != b || len(d) != 0 {
		t.Fatalf("detachAll = %v, left %d", got, len(d))
	}
	if b.drain.timer.Stop() {
		t.Fatal("detachAll left the drain timer running")
	}
}
