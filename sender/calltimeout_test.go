package sender

import (
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
)

// Under load WithCallTimeout(d) fired as early as 0.92·d,
// because the deadline was counted from a sweep epoch the sweeper had not
// advanced yet. The documented bound is d to 1.1·d; the lower half is what
// a caller relies on (a timeout must not cut a call short), so it is
// asserted; lateness depends on the machine's load and is only logged.
func TestDefaultCallTimeoutNeverFiresBeforeItsDuration(t *testing.T) {
	const (
		d     = 500 * time.Millisecond
		calls = 100
	)
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}), WithCallTimeout(d))
	if _, err := c.Call(ctCtx(t), "db", "@rec", []byte("warm")); err != nil {
		t.Fatal(err)
	}

	// Busy goroutines delay the sweeper, as a loaded pod does.
	var stop atomic.Bool
	var busy sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		busy.Add(1)
		go func() {
			defer busy.Done()
			for x := 0; !stop.Load(); x++ {
				_ = x * x
			}
		}()
	}
	defer func() { stop.Store(true); busy.Wait() }()

	var mu sync.Mutex
	var elapsed []time.Duration
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond) // calls arrive at every point of a sweep period
	defer tick.Stop()
	for range calls {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := c.Call(context.Background(), "db", "@slow", []byte("never answered"))
			took := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("call ended with %v, want the default timeout", err)
			}
			mu.Lock()
			elapsed = append(elapsed, took)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(elapsed)
	lo, hi := elapsed[0], elapsed[len(elapsed)-1]
	t.Logf("%d calls under load, WithCallTimeout(%v): fired after %.3f·d to %.3f·d (median %.3f·d)",
		len(elapsed), d, float64(lo)/float64(d), float64(hi)/float64(d), float64(elapsed[len(elapsed)/2])/float64(d))
	if lo < d {
		t.Fatalf("a call timed out after %v, before its timeout %v (%.3f·d)", lo, d, float64(lo)/float64(d))
	}
}

// TestTimedOutQueuedCallSaysWhatItWaitedFor: however the wait of a queued
// call ends (its ctx's deadline, the call timeout the program set, the
// default one), the error says so, names the node's state, why it is in
// it and the last connection error, and wraps context.DeadlineExceeded and
// that connection error.
func TestTimedOutQueuedCallSaysWhatItWaitedFor(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name   string
		opts   []Option
		call   func(c *Client) error
		why    string
		result string
	}{
		{"ctx deadline", nil, func(c *Client) error {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err := c.Call(ctx, "db", "@rec", []byte("x"))
			return err
		}, "context deadline exceeded", resultDeadline},
		{"WithCallTimeout", []Option{WithCallTimeout(100 * time.Millisecond)}, func(c *Client) error {
			_, err := c.Call(context.Background(), "db", "@rec", []byte("x"))
			return err
		}, "call timeout 100ms (WithCallTimeout) exceeded", resultTimeout},
		{"default call timeout", nil, func(c *Client) error {
			errc := make(chan error, 1)
			go func() {
				_, err := c.Call(context.Background(), "db", "@rec", []byte("x"))
				errc <- err
			}()
			testkit.Eventually(t, "the call is queued", func() bool { return ctQueued(c, "db") == 2 })
			ctNode(c, "db").expire(c.now() + uint64(time.Hour)) // as if the 30s had passed
			return <-errc
		}, "default call timeout 30s (DefaultCallTimeout) exceeded", resultTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.NewStatic(map[string]string{"db": refused})
			c := ctNewClient(t, reg, tc.opts...)
			if err := c.Send(context.Background(), "db", "@rec", []byte("first")); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, "a connection attempt failed", func() bool { return lastError(c, "db") != nil })
			reg.SetNotReady("db", "ClusterNode db: Ready=False NoReadyEndpoints")
			testkit.Eventually(t, "the node is resolving", func() bool { return c.State("db") == StateResolving })

			err := tc.call(c)
			want := `skycall: call to node "db" service @rec: ` + tc.why +
				" while queued (node resolving: not_ready: ClusterNode db: Ready=False NoReadyEndpoints; last connection error: " +
				lastError(c, "db").Error() + "); it was not sent"
			if err == nil || err.Error() != want {
				t.Fatalf("error\n%v\nwant\n%s", err, want)
			}
			if !strings.Contains(want, "connection refused") {
				t.Fatalf("the last connection error %q is not the refused dial", lastError(c, "db"))
			}
			var op *net.OpError
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &op) {
				t.Errorf("errors.Is DeadlineExceeded %v, errors.As *net.OpError %v; want both",
					errors.Is(err, context.DeadlineExceeded), errors.As(err, &op))
			}
			if r := callResultOf(err); r != tc.result {
				t.Errorf("counted as %q, want %q", r, tc.result)
			}
		})
	}
}

// TestTimedOutSentCallSaysItWasSent: a call past its call timeout after it
// was written says so and names the timeout the program set.
func TestTimedOutSentCallSaysItWasSent(t *testing.T) {
	peer := ctServe(t, "db")
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": peer.addr}), WithCallTimeout(100*time.Millisecond))
	_, err := c.Call(context.Background(), "db", "@slow", []byte("x"))
	want := `skycall: call to node "db" service @slow: call timeout 100ms (WithCallTimeout) exceeded (the request was sent; its reply will be discarded)`
	if err == nil || err.Error() != want || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v\nwant %s, a context.DeadlineExceeded", err, want)
	}
}
