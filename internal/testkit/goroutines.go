package testkit

import (
	"runtime"
	"strings"
)

// Goroutines are the ids of the goroutines whose stack has a frame of any
// of frames ("skycall/sender.(*node)." for a method of node, say): what a
// test counts to prove a component left nothing running.
func Goroutines(frames ...string) map[string]bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	ids := map[string]bool{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range frames {
			if strings.Contains(g, f) {
				id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
				ids[id] = true
				break
			}
		}
	}
	return ids
}
