package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
)

// Bounds of a load, so that a wrong request cannot take the machine.
const (
	maxCallers      = 256
	minCallEvery    = 10 * time.Millisecond
	minPushEvery    = time.Millisecond
	maxLoadDuration = 10 * time.Minute
	loadStopWait    = time.Minute
)

// load is the sender's bounded load, as a game server's steady traffic:
// callers concurrent callers, caller i calling node i mod len(nodes) every
// callEvery (so a node's drain holds its own callers only, as a game's
// per-node traffic), and per node one ordered push stream (values "push", node,
// sequence number from 1, issue time in Unix nanoseconds) of one push
// every pushEvery. It runs until stopped or for at most its max duration.
type load struct {
	nodes  []string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	callsOK   int
	failed    map[string]int // calls failed, by "node errorKind"
	maxCall   time.Duration  // the slowest call that succeeded
	maxFailed time.Duration  // the slowest call that failed
	pushes    map[string]int // pushes issued per node
	pushFails map[string]int // "node kind": SendValues errors
}

// startLoad parses /load/start's query and starts the load.
func startLoad(c *sender.Client, q map[string][]string) (*load, error) {
	get := func(k, def string) string {
		if v := q[k]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
		return def
	}
	nodes := strings.Split(get("to", ""), ",")
	callers, err1 := strconv.Atoi(get("callers", "64"))
	callEvery, err2 := time.ParseDuration(get("callevery", "100ms"))
	pushEvery, err3 := time.ParseDuration(get("pushevery", "20ms"))
	max, err4 := time.ParseDuration(get("max", "5m"))
	if nodes[0] == "" || errors.Join(err1, err2, err3, err4) != nil || callers < 0 || callers > maxCallers ||
		callEvery < minCallEvery || pushEvery < minPushEvery || max <= 0 || max > maxLoadDuration {
		return nil, fmt.Errorf("want /load/start?to=NODE[,NODE]&callers=0..%d&callevery=>=%v&pushevery=>=%v&max=<=%v",
			maxCallers, minCallEvery, minPushEvery, maxLoadDuration)
	}
	ctx, cancel := context.WithTimeout(context.Background(), max)
	l := &load{nodes: nodes, cancel: cancel, failed: map[string]int{}, pushes: map[string]int{}, pushFails: map[string]int{}}
	for id := range callers {
		l.wg.Add(1)
		go l.caller(ctx, c, id, callEvery)
	}
	for _, node := range nodes {
		l.wg.Add(1)
		go l.pusher(ctx, c, node, pushEvery)
	}
	return l, nil
}

func (l *load) caller(ctx context.Context, c *sender.Client, id int, every time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		node := l.nodes[id%len(l.nodes)]
		// A call once issued runs to its end, stop or not: the load's end
		// must not count as a failure. The client's call timeout bounds it.
		start := time.Now()
		_, err := c.CallValues(context.Background(), node, "@echo", "call", id, i)
		took := time.Since(start)
		l.mu.Lock()
		if err != nil {
			l.failed[node+" "+errorKind(err)]++
			l.maxFailed = max(l.maxFailed, took)
			fmt.Printf("load: call %d/%d to %s failed after %v: %v\n", id, i, node, took.Round(time.Millisecond), err)
		} else {
			l.callsOK++
			l.maxCall = max(l.maxCall, took)
		}
		l.mu.Unlock()
	}
}

// pusher issues node's push stream from one goroutine, so that the
// sequence numbers are in the order issued.
func (l *load) pusher(ctx context.Context, c *sender.Client, node string, every time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.SendValues(context.Background(), node, "@echo", "push", node, seq, time.Now().UnixNano())
		l.mu.Lock()
		l.pushes[node]++
		if err != nil {
			l.pushFails[node+" "+errorKind(err)]++
			fmt.Printf("load: push %d to %s failed: %v\n", seq, node, err)
		}
		l.mu.Unlock()
	}
}

// errorKind names an error by the sender's error it is, for counting.
func errorKind(err error) string {
	for _, k := range []error{sender.ErrConnectionLost, sender.ErrPeerUnresponsive, sender.ErrNodeDown,
		sender.ErrUnknownNode, sender.ErrQueueFull, sender.ErrWrongNode, sender.ErrClosed,
		sender.ErrMessageTooLarge, sender.ErrRegistry, context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, k) {
			return strings.ReplaceAll(strings.TrimPrefix(k.Error(), "skycall: "), " ", "_")
		}
	}
	var re *sender.RemoteError
	if errors.As(err, &re) {
		return "remote_error"
	}
	return "other"
}

// stop ends the load: no new calls or pushes, every call issued answered
// (or failed), and every node's queue empty or a minute gone; then it
// writes the report, one figure a line:
//
//	calls ok N
//	calls failed NODE KIND N
//	call max latency DURATION       (the slowest call that succeeded)
//	call max failed DURATION        (the slowest that failed)
//	call timeout DURATION           (the client's WithCallTimeout)
//	pushes sent NODE N
//	pushes failed NODE KIND N
//	queued NODE N                   (still in the node's FIFO)
//	dropped NODE REASON N           (skycall_sender_dropped_total, since start)
func (l *load) stop(reg *prometheus.Registry, callTimeout time.Duration, w io.Writer) {
	l.cancel()
	l.wg.Wait()
	deadline := time.Now().Add(loadStopWait)
	for time.Now().Before(deadline) && l.queued(reg) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(w, "calls ok %d\n", l.callsOK)
	for _, k := range sortedKeys(l.failed) {
		fmt.Fprintf(w, "calls failed %s %d\n", k, l.failed[k])
	}
	fmt.Fprintf(w, "call max latency %v\n", l.maxCall.Round(time.Millisecond))
	fmt.Fprintf(w, "call max failed %v\n", l.maxFailed.Round(time.Millisecond))
	fmt.Fprintf(w, "call timeout %v\n", callTimeout)
	for _, n := range l.nodes {
		fmt.Fprintf(w, "pushes sent %s %d\n", n, l.pushes[n])
	}
	for _, k := range sortedKeys(l.pushFails) {
		fmt.Fprintf(w, "pushes failed %s %d\n", k, l.pushFails[k])
	}
	for _, n := range l.nodes {
		fmt.Fprintf(w, "queued %s %d\n", n, int(metric(reg, "skycall_sender_queue_messages", n)))
	}
	for _, d := range dropped(reg) {
		fmt.Fprintln(w, d)
	}
}

func (l *load) queued(reg *prometheus.Registry) float64 {
	var n float64
	for _, node := range l.nodes {
		n += metric(reg, "skycall_sender_queue_messages", node)
	}
	return n
}

// dropped lists skycall_sender_dropped_total as "dropped NODE REASON N",
// the non-zero series only. The client is the load's alone in the rolling
// test; elsewhere it counts earlier batches too.
func dropped(reg *prometheus.Registry) []string {
	mfs, err := reg.Gather()
	if err != nil {
		return []string{"dropped ? gather_error 0"}
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "skycall_sender_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetCounter().GetValue() == 0 {
				continue
			}
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			out = append(out, fmt.Sprintf("dropped %s %s %d", labels["node"], labels["reason"], int(m.GetCounter().GetValue())))
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// loadHandlers are /load/start and /load/stop (see runSender); callTimeout
// is c's, for the report.
func loadHandlers(mux *http.ServeMux, c *sender.Client, reg *prometheus.Registry, callTimeout time.Duration) {
	var mu sync.Mutex
	var running *load
	mux.HandleFunc("GET /load/start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if running != nil {
			http.Error(w, "a load is running; GET /load/stop first", http.StatusConflict)
			return
		}
		l, err := startLoad(c, r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		running = l
		fmt.Printf("load: started %s\n", r.URL.RawQuery)
		fmt.Fprintln(w, "started")
	})
	mux.HandleFunc("GET /load/stop", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if running == nil {
			http.Error(w, "no load is running", http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		running.stop(reg, callTimeout, io.MultiWriter(w, prefixed{"load: "}))
		running = nil
	})
}

// prefixed copies a report to the pod's log, each line prefixed.
type prefixed struct{ p string }

func (p prefixed) Write(b []byte) (int, error) {
	fmt.Print(p.p + string(b))
	return len(b), nil
}
