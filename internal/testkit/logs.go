package testkit

import (
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// Logs collects what a logger logged, for assertions and for failed tests.
type Logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *Logs) Contains(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return true
	}
	return false
}

// Logger logs into Logs (verbosity 1), and into the test's output if it
// fails.
func Logger(t testing.TB) (logr.Logger, *Logs) {
	logs := &Logs{}
	t.Cleanup(func() {
		if t.Failed() {
			logs.mu.Lock()
			defer logs.mu.Unlock()
			for _, l := range logs.lines {
				t.Log("server: " + l)
			}
		}
	})
	return funcr.New(func(prefix, args string) {
		logs.mu.Lock()
		logs.lines = append(logs.lines, prefix+args)
		logs.mu.Unlock()
	}, funcr.Options{Verbosity: 1}), logs
}
