package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// recorder writes down every push of a load (see load.go) a node handles,
// one line each, to a file of its own per process:
//
//	DIR/NAME-STARTNANOS.log:  push NODE SEQ SENTNANOS RECEIVEDNANOS
//	                          event WHAT NANOS   (sigterm, shutdown, shutdown-failed)
//
// A node pod's output goes with the pod when a rollout replaces it; the
// rolling-restart test mounts DIR from the host so that what every
// incarnation received outlives it, with whether it got SIGTERM and finished
// Server.Shutdown (a force delete's and a SIGKILL's differ there). Each line is one write(2), so a process
// killed in the middle loses no line it handled.
type recorder struct {
	mu sync.Mutex
	f  *os.File
}

func newRecorder(dir, node string) (*recorder, error) {
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.log", node, time.Now().UnixNano()))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("recording pushes: %w", err)
	}
	fmt.Printf("recording pushes in %s\n", path)
	return &recorder{f: f}, nil
}

// push records a load's push: values "push", node, sequence number, and the
// time it was issued (Unix nanoseconds, the sender's clock: the test's pods
// share one machine's).
func (r *recorder) push(vals []any) error {
	if len(vals) != 4 || vals[0] != "push" {
		return fmt.Errorf("not a load push (want push, node, seq, sent): %v", vals)
	}
	line := fmt.Sprintf("push %v %v %v %d\n", vals[1], vals[2], vals[3], time.Now().UnixNano())
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.f.WriteString(line)
	return err
}

// event records what happened to the process (WHAT without spaces) and when.
func (r *recorder) event(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.f, "event %s %d\n", what, time.Now().UnixNano())
}

func (r *recorder) Close() error { return r.f.Close() }
