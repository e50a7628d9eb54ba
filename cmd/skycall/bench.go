package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
)

const benchLong = `Load-test the service at ADDR on NODE with calls (or, with --send, sends)
of the packed ARGs, from --concurrency workers, for --count messages or
for --duration, whichever is given (--count wins). The load is bounded: at
most 100,000,000 messages and 1 hour.

The connection is made and confirmed before the clock starts. On a
terminal a progress line is updated as it runs. At the end come the
summary, a latency histogram and percentiles, as ghz and nats bench print,
and the errors grouped by message. Calls are timed from Call to reply.
Sends have no reply: their rate is what the Client accepted, and a round
trip after the last one confirms that the node received them all.

bench exits 0 when every message succeeded.`

const benchExample = `  # 10,000 calls from 16 workers
  skycall bench db @echo "'ping'" --count 10000 -c 16

  # Sends for 30 seconds
  skycall bench db @log "'info', 'x'" --send -d 30s

  # Machine-readable summary
  skycall bench db @echo "'ping'" --count 1000 -o json`

type benchOptions struct {
	*globalOptions
	concurrency int
	count       int64
	duration    time.Duration
	push        bool
	output      string
	progress    string
}

// benchResult is bench's -o json output; durations in milliseconds.
type benchResult struct {
	Node         string            `json:"node"`
	Address      string            `json:"address"`
	Service      string            `json:"service"`
	Mode         string            `json:"mode"`
	Concurrency  int               `json:"concurrency"`
	Count        uint64            `json:"count"`
	OK           uint64            `json:"ok"`
	Errors       map[string]uint64 `json:"errors,omitempty"`
	TotalSeconds float64           `json:"totalSeconds"`
	PerSecond    float64           `json:"perSecond"`
	Latency      *benchLatency     `json:"latencyMillis,omitempty"`
	Histogram    []benchBar        `json:"histogram,omitempty"`
}

type benchLatency struct {
	Fastest float64 `json:"fastest"`
	Average float64 `json:"average"`
	Slowest float64 `json:"slowest"`
	P10     float64 `json:"p10"`
	P25     float64 `json:"p25"`
	P50     float64 `json:"p50"`
	P75     float64 `json:"p75"`
	P90     float64 `json:"p90"`
	P95     float64 `json:"p95"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p99.9"`
}

type benchBar struct {
	UpToMillis float64 `json:"upToMillis"`
	Count      uint64  `json:"count"`
}

func newBenchCommand(g *globalOptions) *cobra.Command {
	o := &benchOptions{globalOptions: g}
	c := &cobra.Command{
		Use:     "bench NODE ADDR [ARG...]",
		Short:   "Load-test a service on a node: rate, latency histogram, percentiles",
		Long:    benchLong,
		Example: benchExample,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return o.run(cmd.Context(), args[0], args[1], args[2:])
		},
		ValidArgsFunction: g.completeNode,
	}
	f := c.Flags()
	f.IntVarP(&o.concurrency, "concurrency", "c", 8, "workers sending at once")
	f.Int64Var(&o.count, "count", 0, "messages in all (0: run for --duration)")
	f.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "how long to run when --count is 0")
	f.BoolVar(&o.push, "send", false, "send (cluster.send) instead of call")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	f.StringVar(&o.progress, "progress", "auto", "live progress line on standard error: auto (on a terminal), always or never")
	return c
}

func (o *benchOptions) check() error {
	switch {
	case o.concurrency < 1 || o.concurrency > 10000:
		return usagef("-c %d: want 1 to 10000 workers", o.concurrency)
	case o.count < 0 || o.count > 100_000_000:
		return usagef("--count %d: want 0 (use --duration) to 100000000 messages", o.count)
	case o.count == 0 && (o.duration <= 0 || o.duration > time.Hour):
		return usagef("-d %v: want a duration up to 1h (or give --count)", o.duration)
	case o.output != "text" && o.output != "json":
		return usagef("-o %q: want text or json", o.output)
	case o.progress != "auto" && o.progress != "always" && o.progress != "never":
		return usagef("--progress %q: want auto, always or never", o.progress)
	}
	return nil
}

// benchWorker is one worker's tally, merged at the end so that workers
// share nothing but the message counter.
type benchWorker struct {
	h      hist
	ok     uint64
	errs   map[string]uint64
	failed uint64
}

// maxErrorKinds bounds the distinct error texts kept; more are "other".
const maxErrorKinds = 20

func (w *benchWorker) fail(err error) {
	w.failed++
	if w.errs == nil {
		w.errs = map[string]uint64{}
	}
	text := err.Error()
	if _, ok := w.errs[text]; !ok && len(w.errs) >= maxErrorKinds {
		text = "(other errors)"
	}
	w.errs[text]++
}

func (o *benchOptions) run(ctx context.Context, node, addr string, args []string) error {
	vals, err := parseArgs(args)
	if err != nil {
		return err
	}
	payload, err := luaseri.Pack(vals...)
	if err != nil {
		return usageError{err}
	}
	src, entry, err := o.openNode(ctx, node)
	if err != nil {
		return err
	}
	defer src.Close()
	log := newRejectLog(o.logger())
	metrics := prometheus.NewRegistry()
	c := o.newClient(src, sender.WithLogger(log.logger()), sender.WithRegisterer(metrics))
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	err = confirm(rctx, c, node)
	cancel()
	if err != nil {
		return explain(err, node, entry, o.timeout)
	}

	var (
		done    atomic.Int64 // messages finished, for the progress line
		claimed atomic.Int64 // messages started, in --count mode
		stop    atomic.Bool  // --duration is over, or interrupted
		wg      sync.WaitGroup
	)
	workers := make([]benchWorker, o.concurrency)
	start := time.Now()
	if o.count == 0 {
		t := time.AfterFunc(o.duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	// Interrupted (Ctrl-C): stop, and still print what was measured.
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	for i := range workers {
		wg.Add(1)
		go func(w *benchWorker) {
			defer wg.Done()
			for !stop.Load() {
				if o.count > 0 && claimed.Add(1) > o.count {
					return
				}
				// Not cancelled by an interrupt: messages in flight
				// finish and are counted, only new ones stop.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.timeout)
				t := time.Now()
				var err error
				if o.push {
					err = send(cctx, c, node, addr, payload)
				} else {
					_, err = call(cctx, c, node, addr, payload)
				}
				d := time.Since(t)
				cancel()
				if err != nil {
					w.fail(explain(err, node, entry, o.timeout))
				} else {
					w.ok++
					if !o.push {
						w.h.add(d)
					}
				}
				done.Add(1)
			}
		}(&workers[i])
	}
	progressDone := o.showProgress(&done, start)
	wg.Wait()
	elapsed := time.Since(start)
	progressDone()

	var total benchWorker
	total.errs = map[string]uint64{}
	for i := range workers {
		w := &workers[i]
		total.h.merge(&w.h)
		total.ok += w.ok
		total.failed += w.failed
		for k, v := range w.errs {
			total.errs[k] += v
		}
	}
	if o.push && total.ok > 0 {
		// The sends are queued, maybe not yet written: one round trip
		// behind them says the node has read them all.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.timeout)
		err := confirm(rctx, c, node)
		cancel()
		if err != nil {
			return fmt.Errorf("after %d sends, the round trip confirming they arrived failed: %w", total.ok, explain(err, node, entry, o.timeout))
		}
		elapsed = time.Since(start)
		if n := droppedRejected(metrics, node); n > 0 {
			err := log.rejected(metrics, node, addr)
			total.errs[err.Error()] += uint64(n)
			total.ok -= min(total.ok, uint64(n))
			total.failed += uint64(n)
		}
	}
	res := o.result(node, entry.Address, addr, &total, elapsed)
	if o.output == "json" {
		if err := writeJSON(o.out, res); err != nil {
			return err
		}
	} else {
		printBench(o.out, res, &total.h)
	}
	if total.failed > 0 {
		return fmt.Errorf("%d of %d messages to node %q failed (see the errors above)", total.failed, total.ok+total.failed, node)
	}
	return nil
}

// showProgress updates a progress line on standard error until the
// returned function is called, which clears it.
func (o *benchOptions) showProgress(done *atomic.Int64, start time.Time) func() {
	if o.progress == "never" || (o.progress == "auto" && !o.tty) {
		return func() {}
	}
	what := "calls"
	if o.push {
		what = "sends"
	}
	total := ""
	if o.count > 0 {
		total = fmt.Sprintf("/%d", o.count)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				fmt.Fprint(o.errOut, "\r\033[K")
				return
			case <-tick.C:
				n := done.Load()
				el := time.Since(start)
				fmt.Fprintf(o.errOut, "\r\033[K%d%s %s  %.0f/s  %s", n, total, what, float64(n)/el.Seconds(), el.Truncate(100*time.Millisecond))
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

func (o *benchOptions) result(node, address, service string, t *benchWorker, elapsed time.Duration) benchResult {
	mode := "call"
	if o.push {
		mode = "send"
	}
	r := benchResult{
		Node: node, Address: address, Service: service, Mode: mode, Concurrency: o.concurrency,
		Count: t.ok + t.failed, OK: t.ok, TotalSeconds: elapsed.Seconds(),
		PerSecond: float64(t.ok) / elapsed.Seconds(),
	}
	if len(t.errs) > 0 {
		r.Errors = t.errs
	}
	if h := &t.h; h.n > 0 {
		r.Latency = &benchLatency{
			Fastest: millis(h.min), Average: millis(h.mean()), Slowest: millis(h.max),
			P10: millis(h.quantile(.10)), P25: millis(h.quantile(.25)), P50: millis(h.quantile(.5)),
			P75: millis(h.quantile(.75)), P90: millis(h.quantile(.9)), P95: millis(h.quantile(.95)),
			P99: millis(h.quantile(.99)), P999: millis(h.quantile(.999)),
		}
		edges, counts := h.linear(10)
		for i := range edges {
			r.Histogram = append(r.Histogram, benchBar{UpToMillis: millis(edges[i]), Count: counts[i]})
		}
	}
	return r
}

func printBench(w io.Writer, r benchResult, h *hist) {
	fmt.Fprintf(w, "Summary:\n")
	fmt.Fprintf(w, "  Node:         %s (%s)\n", r.Node, r.Address)
	fmt.Fprintf(w, "  Service:      %s\n", r.Service)
	fmt.Fprintf(w, "  Mode:         %s, %d workers\n", r.Mode, r.Concurrency)
	fmt.Fprintf(w, "  Count:        %d (%d ok, %d errors)\n", r.Count, r.OK, r.Count-r.OK)
	fmt.Fprintf(w, "  Total:        %.3f s\n", r.TotalSeconds)
	fmt.Fprintf(w, "  Rate:         %.1f %ss/s\n", r.PerSecond, r.Mode)
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "  Fastest:      %.3f ms\n", l.Fastest)
		fmt.Fprintf(w, "  Average:      %.3f ms\n", l.Average)
		fmt.Fprintf(w, "  Slowest:      %.3f ms\n", l.Slowest)
		fmt.Fprintf(w, "\nLatency histogram:\n")
		var most uint64
		for _, b := range r.Histogram {
			most = max(most, b.Count)
		}
		width := len(fmt.Sprint(most))
		for _, b := range r.Histogram {
			bar := strings.Repeat("∎", int(b.Count*40/max(most, 1)))
			fmt.Fprintf(w, "  %9.3f ms [%-*d] |%s\n", b.UpToMillis, width, b.Count, bar)
		}
		fmt.Fprintf(w, "\nLatency distribution:\n")
		for _, p := range []struct {
			name string
			v    float64
		}{{"10", l.P10}, {"25", l.P25}, {"50", l.P50}, {"75", l.P75}, {"90", l.P90}, {"95", l.P95}, {"99", l.P99}, {"99.9", l.P999}} {
			fmt.Fprintf(w, "  %4s %% in %.3f ms\n", p.name, p.v)
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "\nErrors:\n")
		for _, k := range sortedKeys(r.Errors) {
			fmt.Fprintf(w, "  [%d] %s\n", r.Errors[k], k)
		}
	}
}
