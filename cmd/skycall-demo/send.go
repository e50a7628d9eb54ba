package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
)

// runSend issues, to each node, count messages alternating send and call,
// numbered in the order they are issued, and waits for every reply. It uses
// the Kubernetes registry (sender.NewInCluster): KUBECONFIG and POD_NAMESPACE
// say where. A node that is not ready yet gets its messages queued, and they
// leave in order when it becomes ready.
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
	c, err := sender.NewInCluster(sender.WithRegisterer(reg), sender.WithCallTimeout(*timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 1024)
	for _, node := range strings.Split(*to, ",") {
		for i := 1; i <= *count; i++ {
			start := time.Now()
			if i%2 == 1 {
				if err := c.SendValues(ctx, node, "@echo", "msg", i); err != nil {
					return fmt.Errorf("send %d to %s: %w", i, node, err)
				}
				fmt.Printf("%s: send #%d issued (%s)\n", node, i, c.State(node))
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
				fmt.Printf("%s: call #%d replied %v after %v\n", node, i, reply, time.Since(start).Round(time.Millisecond))
			}(node, i)
			// Wait until the call is in the node's queue or on the wire
			// before issuing the next message, so the issue order is the
			// order printed above.
			waitIssued(ctx, reg, node, i)
			fmt.Printf("%s: call #%d issued (%s)\n", node, i, c.State(node))
		}
		if n := metric(reg, "skycall_sender_queue_messages", node); n > 0 {
			fmt.Printf("%s: %d message(s) waiting in its queue until it is ready\n", node, int(n))
		}
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return err
	}
	fmt.Println("all replies received")
	return nil
}

// waitIssued returns once the node has taken n messages: queued, or
// already written to its connection.
func waitIssued(ctx context.Context, reg *prometheus.Registry, node string, n int) {
	for ctx.Err() == nil {
		if metric(reg, "skycall_sender_queue_messages", node)+metric(reg, "skycall_sender_written_messages_total", node) >= float64(n) {
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
