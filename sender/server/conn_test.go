package server

import "testing"

func TestServerConnStateOnlyMovesForward(t *testing.T) {
	c := &conn{s: New("db"), peer: "test"}
	c.cond.L = &c.mu
	steps := []struct {
		to      connState
		changed bool
		want    connState
	}{
		{connDraining, true, connDraining},
		{connOpen, false, connDraining},
		{connDraining, false, connDraining},
		{connClosed, true, connClosed},
		{connDraining, false, connClosed},
	}
	for _, st := range steps {
		c.mu.Lock()
		changed := c.setStateLocked(st.to)
		got := c.state
		c.mu.Unlock()
		if changed != st.changed || got != st.want {
			t.Fatalf("to %v: changed %v, state %v; want %v, %v", st.to, changed, got, st.changed, st.want)
		}
	}
}
