package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/kube"
)

// runSend issues, to each node, count messages alternating send and call,
// numbered in the order they are issued, and waits for every reply. It uses
// the Kubernetes registry (kube.NewClient): in a pod its ServiceAccount,
// elsewhere KUBECONFIG and POD_NAMESPACE say where. A node that is not ready
// yet gets its messages queued, and they leave in order when it becomes
// ready.
func runSend(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	to := fs.String("to", "", "comma-separated node names (required)")
	count := fs.Int("count", 6, "messages per node, alternating send and call")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for everything")
	_ = fs.Parse(args)
	if *to == "" {
		return errors.New("--to is required")
	}

	reg := prometheus.NewRegistry()
	c, err := kube.NewClient(sender.WithRegisterer(reg), sender.WithCallTimeout(*timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := issue(ctx, c, reg, &lockedWriter{w: os.Stdout}, strings.Split(*to, ","), 1, *count); err != nil {
		return err
	}
	fmt.Println("all replies received")
	return nil
}

// issue sends each node count messages numbered first, first+1, ...,
// alternating send (odd) and call (even), prints what happens to each, and
// waits for every reply.
func issue(ctx context.Context, c *sender.Client, reg *prometheus.Registry, out io.Writer, nodes []string, first, count int) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*count)
	for _, node := range nodes {
		// The node's counters before this batch: a long-lived client has
		// written earlier batches.
		base := metric(reg, "skycall_sender_queue_messages", node) + metric(reg, "skycall_sender_written_messages_total", node)
		for i := first; i < first+count; i++ {
			start := time.Now()
			if i%2 == 1 {
				if err := c.SendValues(ctx, node, "@echo", "msg", i); err != nil {
					return fmt.Errorf("send %d to %s: %w", i, node, err)
				}
				fmt.Fprintf(out, "%s: send #%d issued (%s)\n", node, i, c.State(node))
				continue
			}
			wg.Add(1)
			go func(node string, i int) {
				defer wg.Done()
				reply, err := c.CallValues(ctx, node, "@echo", "msg", i)
				if err != nil {
					errs <- fmt.Errorf("call %d to %s: %w", i, node, err)
					return
				}
				fmt.Fprintf(out, "%s: call #%d replied %v after %v\n", node, i, reply, time.Since(start).Round(time.Millisecond))
			}(node, i)
			// Wait until the call is in the node's queue or on the wire
			// before issuing the next message, so the issue order is the
			// order printed above.
			waitIssued(ctx, reg, node, base+float64(i-first+1))
			fmt.Fprintf(out, "%s: call #%d issued (%s)\n", node, i, c.State(node))
		}
		if n := metric(reg, "skycall_sender_queue_messages", node); n > 0 {
			fmt.Fprintf(out, "%s: %d message(s) waiting in its queue until it is ready\n", node, int(n))
		}
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// waitIssued returns once the node has taken n messages: queued, or
// already written to its connection.
func waitIssued(ctx context.Context, reg *prometheus.Registry, node string, n float64) {
	for ctx.Err() == nil {
		if metric(reg, "skycall_sender_queue_messages", node)+metric(reg, "skycall_sender_written_messages_total", node) >= n {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// metric reads one node's gauge or counter from the Client's metrics.
func metric(reg *prometheus.Registry, name, node string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" && l.GetValue() == node {
					if m.GetGauge() != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// lockedWriter lets the reply goroutines print whole lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if f, ok := l.w.(interface{ Flush() }); ok {
		f.Flush()
	}
	return n, err
}
