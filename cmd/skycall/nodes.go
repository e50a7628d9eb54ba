package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
)

const nodesLong = `List every node of the registry: its state there (ready, not_ready, down),
its address and the registry's reason, and, for ready nodes, whether a
connection could be made and confirmed (CONNECTION, the sender's connection
state) and the round-trip time of one query after it (RTT). --probe=false
skips the connections.

With --watch, the table (or one JSON object a line with -o json) keeps
going: a row is printed again whenever the node's entry or connection state
changes, until interrupted.`

const nodesExample = `  # The ClusterNodes of the current namespace
  skycall nodes

  # Of another namespace, as YAML, without connecting
  skycall nodes -n games -o yaml --probe=false

  # A skynet cluster config file, following changes
  skycall --registry file:cluster.lua nodes --watch`

type nodesOptions struct {
	*globalOptions
	output       string
	probe        bool
	probeTimeout time.Duration
	watch        bool
	interval     time.Duration
}

// nodeRow is one node, as the table and -o json|yaml show it.
type nodeRow struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	Address    string   `json:"address,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Connection string   `json:"connection,omitempty"`
	RTTMillis  *float64 `json:"rttMillis,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// nodeList is the -o json|yaml document.
type nodeList struct {
	Registry string    `json:"registry"`
	Nodes    []nodeRow `json:"nodes"`
}

func newNodesCommand(g *globalOptions) *cobra.Command {
	o := &nodesOptions{globalOptions: g}
	c := &cobra.Command{
		Use:     "nodes",
		Short:   "List the registry's nodes, their state and reachability",
		Long:    nodesLong,
		Example: nodesExample,
		Args:    cobra.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch o.output {
			case "table", "json", "yaml":
			default:
				return usagef("-o %q: want table, json or yaml", o.output)
			}
			return o.run(cmd.Context())
		},
	}
	c.Flags().StringVarP(&o.output, "output", "o", "table", "table, json or yaml")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	c.Flags().BoolVar(&o.probe, "probe", true, "connect to ready nodes and measure a round trip")
	c.Flags().DurationVar(&o.probeTimeout, "probe-timeout", 3*time.Second, "how long to try each node's connection and round trip")
	c.Flags().BoolVarP(&o.watch, "watch", "w", false, "after listing, print nodes again as they change")
	c.Flags().DurationVar(&o.interval, "watch-interval", time.Second, "with --watch, how often to look for new nodes and connection changes (registry changes are printed at once)")
	return c
}

func (o *nodesOptions) run(ctx context.Context) error {
	src, err := o.openSource()
	if err != nil {
		return err
	}
	defer src.Close()
	c := o.newClient(src)
	defer c.Close()
	l := &lister{o: o, src: src, c: c, rtt: map[string]float64{}, probed: map[string]string{}}

	lctx, cancel := context.WithTimeout(ctx, o.timeout)
	rows, err := l.rows(lctx)
	cancel()
	if err != nil {
		return err
	}
	if !o.watch {
		switch o.output {
		case "json":
			return writeJSON(o.out, nodeList{Registry: src.desc, Nodes: rows})
		case "yaml":
			return writeYAML(o.out, nodeList{Registry: src.desc, Nodes: rows})
		}
		tw := newTable(o.out, rows)
		tw.header()
		for _, r := range rows {
			tw.row(r)
		}
		return nil
	}
	return l.watch(ctx, rows)
}

// lister computes the rows; it remembers which nodes it probed so that a
// watch probes a node again only when its entry changes.
type lister struct {
	o   *nodesOptions
	src *source
	c   *sender.Client

	mu     sync.Mutex // guards rtt and probed
	rtt    map[string]float64
	probed map[string]string // node -> address it was probed at
}

func (l *lister) rows(ctx context.Context) ([]nodeRow, error) {
	names, err := l.src.names(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]nodeRow, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16) // probes at once: bounded for big clusters
	for i, name := range names {
		e, err := l.src.lookup(ctx, name)
		if err != nil {
			wg.Wait() // the probes write into rows
			return nil, err
		}
		rows[i] = nodeRow{Name: name, State: e.State.String(), Address: e.Address, Reason: e.Reason}
		if !l.o.probe || e.State != registry.Ready {
			continue
		}
		l.mu.Lock()
		again := l.probed[name] != e.Address
		l.probed[name] = e.Address
		l.mu.Unlock()
		if !again {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(r *nodeRow) {
			defer wg.Done()
			defer func() { <-sem }()
			l.probeNode(ctx, r)
		}(&rows[i])
	}
	wg.Wait()
	for i := range rows {
		l.fill(&rows[i])
	}
	return rows, nil
}

// probeNode connects (the first round trip) and measures one more.
func (l *lister) probeNode(ctx context.Context, r *nodeRow) {
	ctx, cancel := context.WithTimeout(ctx, l.o.probeTimeout)
	defer cancel()
	err := confirm(ctx, l.c, r.Name)
	var d time.Duration
	if err == nil {
		t := time.Now()
		err = confirm(ctx, l.c, r.Name)
		d = time.Since(t)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		r.Error = shortError(err)
		delete(l.rtt, r.Name)
		delete(l.probed, r.Name) // a watch tries again next time
		return
	}
	l.rtt[r.Name] = millis(d)
}

// shortError keeps what a table row has room for: the connection error
// when there is one ("dial tcp ...: connection refused"), else the text.
func shortError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	// A probe that timed out waiting for the connection wraps both the
	// deadline and the last connection error: the latter says why.
	if multi, ok := err.(interface{ Unwrap() []error }); ok && errors.Is(err, context.DeadlineExceeded) {
		for _, e := range multi.Unwrap() {
			if !errors.Is(e, context.DeadlineExceeded) {
				return e.Error()
			}
		}
	}
	return err.Error()
}

// fill adds the connection state the Client has now, and the last RTT.
func (l *lister) fill(r *nodeRow) {
	if !l.o.probe || r.State != registry.Ready.String() && l.c.State(r.Name) == sender.StateIdle {
		return
	}
	state := l.c.State(r.Name)
	r.Connection = state.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	if rtt, ok := l.rtt[r.Name]; ok && state == sender.StateReady {
		r.RTTMillis = &rtt
	}
	if state != sender.StateReady {
		// The connection broke since its probe: a watch probes again,
		// which says why.
		delete(l.probed, r.Name)
	}
}

// watch prints rows again when they change: on a registry notification for
// a known node at once, and every --watch-interval for new nodes and
// connection states.
func (l *lister) watch(ctx context.Context, rows []nodeRow) error {
	out := newWatchPrinter(l.o.out, l.o.output, rows)
	last := map[string]nodeRow{}
	for _, r := range rows {
		out.print(r)
		last[r.Name] = r
	}
	changed := make(chan struct{}, 1)
	stops := map[string]func(){}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	follow := func(names []string) {
		for _, n := range names {
			if stops[n] == nil {
				stops[n] = l.src.reg.Watch(n, func() {
					select {
					case changed <- struct{}{}:
					default:
					}
				})
			}
		}
	}
	follow(sortedKeys(last))
	tick := time.NewTicker(l.o.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil // interrupted: the normal end of a watch
		case <-changed:
		case <-tick.C:
		}
		lctx, cancel := context.WithTimeout(ctx, l.o.timeout)
		rows, err := l.rows(lctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(l.o.errOut, "Warning: %v\n", err)
			continue
		}
		seen := map[string]bool{}
		var names []string
		for _, r := range rows {
			seen[r.Name] = true
			names = append(names, r.Name)
			if old, ok := last[r.Name]; !ok || !sameRow(old, r) {
				out.print(r)
			}
			last[r.Name] = r
		}
		for _, name := range sortedKeys(last) {
			if !seen[name] {
				r := nodeRow{Name: name, State: registry.Absent.String()}
				out.print(r)
				delete(last, name)
				l.mu.Lock()
				delete(l.probed, name)
				l.mu.Unlock()
			}
		}
		follow(names)
	}
}

// sameRow compares what a watcher cares about: not the RTT, which changes
// with every probe.
func sameRow(a, b nodeRow) bool {
	a.RTTMillis, b.RTTMillis = nil, nil
	return a == b
}

// table prints rows in aligned columns. Its widths are fixed by the rows
// it is made with, so that rows a watch prints later line up with them
// (a longer value pushes only its own row).
type table struct {
	w      io.Writer
	widths []int
}

var tableHeader = []string{"NAME", "STATE", "ADDRESS", "CONNECTION", "RTT", "REASON"}

func newTable(w io.Writer, rows []nodeRow) *table {
	t := &table{w: w, widths: make([]int, len(tableHeader))}
	for _, cells := range append([][]string{tableHeader}, tableCells(rows)...) {
		for i, c := range cells {
			t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
		}
	}
	return t
}

func tableCells(rows []nodeRow) [][]string {
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = r.cells()
	}
	return cells
}

func (r nodeRow) cells() []string {
	rtt := "-"
	if r.RTTMillis != nil {
		rtt = fmt.Sprintf("%.3fms", *r.RTTMillis)
	}
	reason := r.Reason
	if r.Error != "" {
		reason = strings.TrimSpace(reason + " " + r.Error)
	}
	return []string{r.Name, r.State, dash(r.Address), dash(r.Connection), rtt, dash(reason)}
}

func (t *table) line(cells []string) {
	var b strings.Builder
	for i, c := range cells {
		b.WriteString(c)
		if i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", max(t.widths[i]-utf8.RuneCountInString(c), 0)+3))
		}
	}
	fmt.Fprintln(t.w, b.String())
}

func (t *table) header()       { t.line(tableHeader) }
func (t *table) row(r nodeRow) { t.line(r.cells()) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// watchPrinter writes watch rows: a table whose header is printed once,
// JSON lines, or YAML documents.
type watchPrinter struct {
	w      io.Writer
	output string
	tw     *table
}

func newWatchPrinter(w io.Writer, output string, first []nodeRow) *watchPrinter {
	p := &watchPrinter{w: w, output: output}
	if output == "table" {
		p.tw = newTable(w, first)
		p.tw.header()
	}
	return p
}

func (p *watchPrinter) print(r nodeRow) {
	switch p.output {
	case "json":
		b, _ := json.Marshal(r)
		fmt.Fprintf(p.w, "%s\n", b)
	case "yaml":
		fmt.Fprintln(p.w, "---")
		_ = writeYAML(p.w, r)
	default:
		p.tw.row(r)
	}
}

func writeYAML(w io.Writer, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
