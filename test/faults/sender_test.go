package faults

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/kube"
	"github.com/skycall-io/skycall/sender/server"
)

// echoNode is a skycall Server on loopback answering "@echo" with its own
// name, so that a caller can tell which node served it.
type echoNode struct {
	addr   string
	served atomic.Int64
}

func startEchoNode(t *testing.T, name string) *echoNode {
	t.Helper()
	n := &echoNode{}
	s := server.New(name)
	if _, err := s.HandleFunc("@echo", func(ctx context.Context, req *server.Request) ([]byte, error) {
		n.served.Add(1)
		return []byte(name), nil
	}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = l.Addr().String()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return n
}

// caller calls a node in a loop and counts what came back.
type caller struct {
	mu     sync.Mutex
	ok     int
	failed []error
	last   string // the reply of the last successful call
}

func (c *caller) snapshot() (ok, failed int, last string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, len(c.failed), c.last
}

func (c *caller) run(ctx context.Context, cl *sender.Client, node string) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		reply, err := cl.Call(cctx, node, "@echo", []byte("ping"))
		cancel()
		c.mu.Lock()
		switch {
		case err == nil:
			c.ok++
			c.last = string(reply)
		case ctx.Err() == nil:
			c.failed = append(c.failed, err)
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond) // a steady trickle, not a benchmark
	}
}

// waitCalls waits until n more calls have succeeded.
func (c *caller) waitCalls(t *testing.T, what string, n int) {
	t.Helper()
	start, _, _ := c.snapshot()
	eventually(t, time.Minute, what, func() error {
		if ok, failed, _ := c.snapshot(); ok < start+n || failed > 0 {
			return fmt.Errorf("%d calls succeeded (want %d more), %d failed", ok-start, n, failed)
		}
		return nil
	})
}

// The sender keeps what its registry last saw: an API server or etcd outage
// must not interrupt calls to nodes it already knows, and an address change
// made after the API server is back reaches it.
func TestSenderDeliversThroughAPIServerAndEtcdOutages(t *testing.T) {
	startManager(t, "manager")
	ns := newNamespace(t)
	first, second := startEchoNode(t, "db"), startEchoNode(t, "db")
	createNode(t, ns, "db", first.addr)

	reg, err := kube.NewRegistry(cp.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	cl := sender.New(reg)
	t.Cleanup(func() { _ = cl.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	var c caller
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx, cl, "db") }()
	t.Cleanup(func() { cancel(); <-done })
	c.waitCalls(t, "calls flow before any fault", 20)

	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	c.waitCalls(t, "calls flow while the API server is down", 100)
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	c.waitCalls(t, "calls flow after the API server is back", 20)

	if err := cp.StopEtcd(); err != nil {
		t.Fatal(err)
	}
	c.waitCalls(t, "calls flow while etcd is down", 100)
	if err := cp.StartEtcd(); err != nil {
		t.Fatal(err)
	}
	c.waitCalls(t, "calls flow after etcd is back", 20)

	// Another API server restart, then move the node: the sender follows.
	ready := restartAPIServer(t, apiOutage)
	changeAddress(t, ns, "db", second.addr)
	eventually(t, time.Minute, "calls reach the node's new address", func() error {
		if second.served.Load() == 0 {
			return fmt.Errorf("the new address has served no call yet")
		}
		return nil
	})
	t.Logf("API server ready -> first call served at the new address: %v", time.Since(ready).Round(10*time.Millisecond))
	ok, failed, _ := c.snapshot()
	t.Logf("calls: %d succeeded, %d failed (first node served %d, second %d)", ok, failed, first.served.Load(), second.served.Load())
	if failed > 0 {
		c.mu.Lock()
		t.Fatalf("%d calls failed during the outages, first: %v", failed, c.failed[0])
	}
}
