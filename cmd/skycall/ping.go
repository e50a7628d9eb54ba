package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/spf13/cobra"
)

const pingLong = `Make confirmation round trips to NODE and print their latency, as ping
does. Each round trip is a cluster query that the node's cluster agent
answers itself (skynet nodes and skycall Servers alike), so it measures the
network and the node's receive path, not a service.

The first round trip also dials and confirms the connection; it is reported
apart ("connected in"), and the statistics cover the round trips after it.
ping exits 0 when every round trip was answered.`

const pingExample = `  skycall ping db
  skycall ping db -c 100 -i 0 -o json`

type pingOptions struct {
	*globalOptions
	count    int
	interval time.Duration
	output   string
}

// pingResult is ping's -o json output.
type pingResult struct {
	Node          string    `json:"node"`
	Address       string    `json:"address"`
	ConnectMillis float64   `json:"connectMillis"`
	Sent          int       `json:"sent"`
	Answered      int       `json:"answered"`
	RTTMillis     *rttStats `json:"rttMillis,omitempty"`
	Errors        []string  `json:"errors,omitempty"`
}

type rttStats struct {
	Min    float64 `json:"min"`
	Avg    float64 `json:"avg"`
	Max    float64 `json:"max"`
	StdDev float64 `json:"stddev"`
}

func newPingCommand(g *globalOptions) *cobra.Command {
	o := &pingOptions{globalOptions: g}
	c := &cobra.Command{
		Use:     "ping NODE",
		Short:   "Measure round trips to a node",
		Long:    pingLong,
		Example: pingExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.count < 1 || o.count > 1_000_000 {
				return usagef("-c %d: want 1 to 1000000 round trips", o.count)
			}
			if o.output != "text" && o.output != "json" {
				return usagef("-o %q: want text or json", o.output)
			}
			return o.run(cmd.Context(), args[0])
		},
		ValidArgsFunction: g.completeNode,
	}
	c.Flags().IntVarP(&o.count, "count", "c", 4, "round trips after the first (connecting) one")
	c.Flags().DurationVarP(&o.interval, "interval", "i", 500*time.Millisecond, "pause between round trips")
	c.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	return c
}

func (o *pingOptions) run(ctx context.Context, node string) error {
	src, entry, err := o.openNode(ctx, node)
	if err != nil {
		return err
	}
	defer src.Close()
	c := o.newClient(src)
	defer c.Close()
	text := o.output == "text"

	res := pingResult{Node: node, Address: entry.Address}
	if text {
		fmt.Fprintf(o.out, "PING %s at %s (%s)\n", node, orNone(entry.Address), src.desc)
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	err = confirm(rctx, c, node)
	cancel()
	if err != nil {
		return explain(err, node, entry, o.timeout)
	}
	connect := time.Since(start)
	res.ConnectMillis = millis(connect)
	if text {
		fmt.Fprintf(o.out, "connected in %s (dial and confirmation included)\n", fmtMillis(connect))
	}

	var rtts []time.Duration
	var firstErr error
	for i := 1; i <= o.count; i++ {
		if i > 1 && o.interval > 0 {
			select {
			case <-time.After(o.interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		res.Sent++
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		t := time.Now()
		err := confirm(rctx, c, node)
		d := time.Since(t)
		cancel()
		if err != nil {
			err = explain(err, node, entry, o.timeout)
			firstErr = cmpOr(firstErr, err)
			res.Errors = append(res.Errors, err.Error())
			if text {
				fmt.Fprintf(o.out, "round trip %d: %v\n", i, err)
			}
			continue
		}
		res.Answered++
		rtts = append(rtts, d)
		if text {
			fmt.Fprintf(o.out, "round trip %d: %s\n", i, fmtMillis(d))
		}
	}
	if len(rtts) > 0 {
		res.RTTMillis = stats(rtts)
	}
	if !text {
		if err := writeJSON(o.out, res); err != nil {
			return err
		}
		return firstErr
	}
	fmt.Fprintf(o.out, "--- %s: %d round trips, %d answered, %d failed ---\n", node, res.Sent, res.Answered, res.Sent-res.Answered)
	if s := res.RTTMillis; s != nil {
		fmt.Fprintf(o.out, "rtt min/avg/max/stddev = %.3f/%.3f/%.3f/%.3f ms\n", s.Min, s.Avg, s.Max, s.StdDev)
	}
	return firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func stats(ds []time.Duration) *rttStats {
	s := &rttStats{Min: math.Inf(1)}
	var sum float64
	for _, d := range ds {
		m := millis(d)
		sum += m
		s.Min = math.Min(s.Min, m)
		s.Max = math.Max(s.Max, m)
	}
	s.Avg = sum / float64(len(ds))
	var sq float64
	for _, d := range ds {
		sq += (millis(d) - s.Avg) * (millis(d) - s.Avg)
	}
	s.StdDev = math.Sqrt(sq / float64(len(ds)))
	for _, p := range []*float64{&s.Min, &s.Avg, &s.Max, &s.StdDev} {
		*p = math.Round(*p*1000) / 1000
	}
	return s
}

func millis(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func fmtMillis(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }
