package sender

import (
	"sync"
	"testing"
)

func TestInflightEachCallIsTakenOnce(t *testing.T) {
	tab := newInflight()
	calls := make([]*call, 100)
	for i := range calls {
		calls[i] = &call{session: uint32(i + 1)}
		tab.add(calls[i])
	}
	// The reader, a withdrawal and a failure race for every call: exactly
	// one of them must win it, or a caller is woken twice or never.
	var mu sync.Mutex
	won := map[*call]int{}
	win := func(w *call) {
		mu.Lock()
		won[w]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for s := uint32(1); s <= 100; s++ {
			if w := tab.take(s); w != nil {
				win(w)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for _, w := range calls {
			if tab.remove(w) {
				win(w)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for _, w := range tab.takeIf(nil, func(*call) bool { return true }) {
			win(w)
		}
	}()
	wg.Wait()
	for _, w := range calls {
		if won[w] != 1 {
			t.Fatalf("call %d taken %d times, want once", w.session, won[w])
		}
	}
	if tab.len() != 0 {
		t.Fatalf("%d calls left", tab.len())
	}
}

func TestInflightRemoveIgnoresAReusedSession(t *testing.T) {
	tab := newInflight()
	old, cur := &call{session: 7}, &call{session: 7}
	tab.add(cur)
	if tab.remove(old) {
		t.Fatal("removed another call under the same session")
	}
	if !tab.any(func(w *call) bool { return w == cur }) {
		t.Fatal("the current call is gone")
	}
	if got := tab.appendIf(nil, func(w *call) bool { return w.session == 7 }); len(got) != 1 || tab.len() != 1 {
		t.Fatal("appendIf must not remove")
	}
}
