// Command skybench compares skycall's Call and Send with gRPC-Go, Proto.Actor
// Go and a plain-TCP ceiling, in one process on loopback, and prints one
// table with medians over alternating rounds, the ratios, and each target
// marked PASS or MISS with the measured figure. A MISS does not fail the
// run: targets live in benchmarks, not tests.
//
//	go run ./cmd/skybench              # 5 rounds x 1s per measurement
//	go run ./cmd/skybench -quick       # short smoke run
//	go run ./cmd/skybench -cpuprofile call64.pprof  # profile skycall Call c=64 only
//
// See ../../README.md for what each row means.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skycall-io/skycall/bench/internal/rawpeer"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

type opts struct {
	rounds     int
	duration   time.Duration
	warmup     time.Duration
	quick      bool
	preN       int
	memNodes   int
	queued     int
	cpuprofile string
	profile    string          // what -cpuprofile profiles
	systems    map[string]bool // measured systems; nil: all, with memory, allocations and pre-ready
	callAppend bool            // skycall's Call rows use CallAppend
}

// measures reports whether the run measures sys.
func (o opts) measures(sys string) bool { return o.systems == nil || o.systems[sys] }

// maxSends bounds one send measurement: Proto.Actor's Send only enqueues
// (its endpoint queue is unbounded), so without a bound a fast loop would
// pile up memory. skycall's own queue bounds it anyway.
const maxSends = 2_000_000

func main() {
	var o opts
	flag.IntVar(&o.rounds, "rounds", 5, "alternating rounds; every figure is the median over them")
	flag.DurationVar(&o.duration, "duration", time.Second, "length of each measurement")
	flag.BoolVar(&o.quick, "quick", false, "short smoke run: -duration 150ms, fewer queued calls and idle nodes")
	flag.IntVar(&o.preN, "prequeue", 1000, "calls queued before the node is ready, in the pre-ready measurement")
	flag.IntVar(&o.memNodes, "idle-nodes", 100, "idle connected nodes for the per-node memory figure")
	flag.IntVar(&o.queued, "queued-sends", 10000, "32-byte Sends queued for a not-ready node, for the memory figure")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the skycall row named by -profile (rounds x duration) to this file, and measure nothing else")
	flag.BoolVar(&o.callAppend, "call-append", false, "skycall's Call rows use Client.CallAppend, each calling goroutine appending replies to its own reused buffer, instead of Client.Call")
	flag.StringVar(&o.profile, "profile", "call-c64-32", "the row -cpuprofile profiles: call-c<conc>-<payload bytes> (call-c1-32, call-c1-4096, call-c64-4096, ...) or send-<payload bytes>")
	systems := flag.String("systems", "", "comma-separated systems to measure (skycall, grpc, protoactor, ceiling), for quick A/B runs; memory, allocations and the pre-ready path are then skipped. Default: everything")
	flag.Parse()
	if *systems != "" {
		o.systems = map[string]bool{}
		for _, sys := range strings.Split(*systems, ",") {
			switch sys = strings.TrimSpace(sys); sys {
			case sysSky, sysGRPC, sysPA, sysCeil:
				o.systems[sys] = true
			default:
				fmt.Fprintf(os.Stderr, "skybench: -systems: unknown system %q (want skycall, grpc, protoactor, ceiling)\n", sys)
				os.Exit(2)
			}
		}
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["duration"] {
			o.duration = 150 * time.Millisecond
		}
		if !set["prequeue"] {
			o.preN = 200
		}
		if !set["idle-nodes"] {
			o.memNodes = 20
		}
	}
	if o.rounds < 1 || o.duration <= 0 || o.preN < 1 || o.memNodes < 1 || o.queued < 1 {
		fmt.Fprintln(os.Stderr, "skybench: -rounds, -duration, -prequeue, -idle-nodes and -queued-sends must be positive")
		os.Exit(2)
	}
	o.warmup = max(o.duration/4, 50*time.Millisecond)

	var err error
	if o.cpuprofile != "" {
		err = profileRow(o)
	} else {
		err = run(o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "skybench:", err)
		os.Exit(1)
	}
}

func profileRow(o opts) error {
	var conc, payload int
	send := false
	if _, err := fmt.Sscanf(o.profile, "call-c%d-%d", &conc, &payload); err != nil || conc < 1 || payload < 0 {
		if _, err := fmt.Sscanf(o.profile, "send-%d", &payload); err != nil || payload < 0 {
			return fmt.Errorf("-profile %q: want call-c<conc>-<payload bytes> or send-<payload bytes>", o.profile)
		}
		send = true
	}
	sky, err := startSkycall(o.callAppend)
	if err != nil {
		return fmt.Errorf("skycall: %w", err)
	}
	defer sky.close()
	if send {
		return profileSend(o, sky, payload)
	}
	call := sky.caller(make([]byte, payload), conc)
	closedLoop(conc, o.warmup, payload, call)
	f, err := os.Create(o.cpuprofile)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	r0, w0 := syscallCounts()
	r := closedLoop(conc, time.Duration(o.rounds)*o.duration, payload, call)
	r1, w1 := syscallCounts()
	pprof.StopCPUProfile()
	if r.err != nil {
		return r.err
	}
	api := "Call"
	if o.callAppend {
		api = "CallAppend"
	}
	fmt.Printf("skycall %s c=%d %s under the profiler: %.0f calls/s, p50 %v, p99 %v; profile in %s\n",
		api, conc, size(payload), r.rate(), r.p50, r.p99, o.cpuprofile)
	if w1 > w0 {
		fmt.Printf("syscalls per call, Client and Server together: %.2f writes, %.2f reads (from /proc/self/io)\n",
			float64(w1-w0)/float64(r.ops), float64(r1-r0)/float64(r.ops))
	}
	printShares(o.cpuprofile, r.ops, "call") // StopCPUProfile wrote it all
	return nil
}

// syscallCounts reads the process's read and write syscall counts (Linux
// only; zeros elsewhere). Batching shows as fewer syscalls per message.
func syscallCounts() (reads, writes int64) {
	u, _ := skynetpeer.ProcessUsage(os.Getpid())
	return u.ReadCalls, u.WriteCalls
}

// measurement names
const (
	sysSky  = "skycall"
	sysGRPC = "grpc"
	sysPA   = "protoactor"
	sysCeil = "ceiling"
	sysRR   = "ceiling-rr" // the ceiling's request/response reference (ceilRR), c > 1
)

var callCases = []struct{ conc, payload int }{{1, 32}, {1, 4096}, {64, 32}, {64, 4096}}

var sendPayloads = []int{32, 1024, 100 << 10}

func callKey(sys string, conc, payload int) string {
	return fmt.Sprintf("call/%s/c%d/%d", sys, conc, payload)
}

func sendKey(sys string, payload int) string { return fmt.Sprintf("send/%s/%d", sys, payload) }

type bench struct {
	o    opts
	sky  *skySys
	grpc *grpcSys
	pa   *paSys
	paNo error // why Proto.Actor is unavailable
	ceil *ceilSys
	seq  *ceilConn // the ceiling's sequential connection

	results map[string][]result // per key, one per round
	pre     []preReady
}

func run(o opts, w io.Writer) error {
	fmt.Fprintf(w, "skybench: %d rounds x %v per measurement (warm-up %v, excluded); %s %s/%s, GOMAXPROCS=%d, NumCPU=%d, %s\n",
		o.rounds, o.duration, o.warmup, runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.GOMAXPROCS(0), runtime.NumCPU(), cpuModel())
	fmt.Fprintf(w, "load average at start: %s\n", loadAvg())
	b := &bench{o: o, results: map[string][]result{}}

	// Memory and allocations first, in a quiet process.
	peer, err := rawpeer.Start()
	if err != nil {
		return err
	}
	defer peer.Close()
	b.sky, err = startSkycall(o.callAppend)
	if err != nil {
		return fmt.Errorf("skycall: %w", err)
	}
	defer b.sky.close()
	var mem memResult
	var allocs allocResult
	if o.systems == nil {
		fmt.Fprintln(w, "measuring memory and allocations...")
		mem = measureIdleNodes(peer, o.memNodes)
		if mem.err == nil {
			b.sky.measureQueuedSends(o.queued, &mem)
		}
		allocs = measureAllocs(peer, o.quick)
	} else {
		mem.err = errors.New("not measured (-systems)")
		allocs.err = mem.err
	}

	// Proto.Actor first: its remote replaces gRPC's global logger, which
	// must happen before any gRPC use.
	if o.measures(sysPA) {
		b.pa, b.paNo = startProtoActor()
		if b.paNo == nil {
			defer b.pa.close()
		}
	} else {
		b.paNo = errors.New("not measured (-systems)")
	}
	if o.measures(sysGRPC) {
		if b.grpc, err = startGRPC(); err != nil {
			return fmt.Errorf("grpc: %w", err)
		}
		defer b.grpc.close()
	}
	if b.ceil, err = startCeiling(); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	defer b.ceil.close()
	if b.seq, err = b.ceil.dial(); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	defer b.seq.c.Close()

	fmt.Fprintln(w, "warming up...")
	b.round(o.warmup, false)
	for i := range o.rounds {
		fmt.Fprintf(w, "round %d/%d...\n", i+1, o.rounds)
		b.round(o.duration, true)
		if o.systems == nil {
			b.pre = append(b.pre, b.sky.preReady(o.preN))
		}
	}
	fmt.Fprintf(w, "load average at end: %s\n\n", loadAvg())
	b.print(w, mem, allocs)
	return nil
}

// round measures every system once, alternating: for each case skycall,
// gRPC, Proto.Actor, the ceiling; then the sends the same way.
func (b *bench) round(d time.Duration, keep bool) {
	o := b.o
	o.duration = d
	put := func(key string, r result) {
		if keep {
			b.results[key] = append(b.results[key], r)
		}
	}
	for _, cc := range callCases {
		payload := make([]byte, cc.payload)
		for i := range payload {
			payload[i] = byte(i)
		}
		if o.measures(sysSky) {
			put(callKey(sysSky, cc.conc, cc.payload), closedLoop(cc.conc, d, cc.payload, b.sky.caller(payload, cc.conc)))
		}
		if b.grpc != nil {
			put(callKey(sysGRPC, cc.conc, cc.payload), closedLoop(cc.conc, d, cc.payload, b.grpc.caller(payload)))
		}
		if b.pa != nil {
			put(callKey(sysPA, cc.conc, cc.payload), closedLoop(cc.conc, d, cc.payload, b.pa.caller(payload)))
		}
		switch {
		case !o.measures(sysCeil):
		case cc.conc == 1:
			put(callKey(sysCeil, 1, cc.payload), closedLoop(1, d, cc.payload, func(int) error { return b.seq.roundTrip(payload) }))
		default:
			put(callKey(sysCeil, cc.conc, cc.payload), b.ceil.pipelined(payload, d))
			rr, err := b.ceil.requestResponse(payload, cc.conc)
			if err != nil {
				put(callKey(sysRR, cc.conc, cc.payload), result{err: err})
				break
			}
			put(callKey(sysRR, cc.conc, cc.payload), closedLoop(cc.conc, d, cc.payload, rr.call))
			rr.close()
		}
	}
	for _, p := range sendPayloads {
		payload := make([]byte, p)
		if o.measures(sysSky) {
			put(sendKey(sysSky, p), b.sky.sendThroughput(payload, o))
		}
		if p == 32 {
			if b.pa != nil {
				put(sendKey(sysPA, p), b.pa.sendThroughput(payload, o))
			}
			if o.measures(sysCeil) {
				put(sendKey(sysCeil, p), b.ceil.oneWay(payload, o))
			}
		}
	}
}

// stats over the rounds of one key.
type stats struct {
	rate, mbps, p50, p99 float64 // medians
	spread               float64 // (max - min) / median of rate
	lost                 int64   // summed over rounds
	ok                   int     // rounds without error
	err                  error   // the first error
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) stats(key string) (s stats, present bool) {
	rs, present := b.results[key]
	var rate, mbps, p50, p99 []float64
	for _, r := range rs {
		if r.err != nil {
			if s.err == nil {
				s.err = r.err
			}
			continue
		}
		s.ok++
		rate = append(rate, r.rate())
		mbps = append(mbps, r.mbps())
		p50 = append(p50, float64(r.p50))
		p99 = append(p99, float64(r.p99))
		s.lost += r.lost
	}
	s.rate, s.mbps, s.p50, s.p99 = median(rate), median(mbps), median(p50), median(p99)
	if len(rate) > 0 {
		s.spread = (slices.Max(rate) - slices.Min(rate)) / s.rate
	}
	return s, present
}

// ratio is the median over rounds of the per-round ratio a/b, with the
// smallest and largest.
type ratio struct {
	med, lo, hi float64
	n           int
}

func (b *bench) ratio(a, c string) ratio {
	ra, rc := b.results[a], b.results[c]
	var v []float64
	for i := range min(len(ra), len(rc)) {
		if ra[i].err != nil || rc[i].err != nil || rc[i].rate() == 0 {
			continue
		}
		v = append(v, ra[i].rate()/rc[i].rate())
	}
	if len(v) == 0 {
		return ratio{med: math.NaN()}
	}
	return ratio{med: median(v), lo: slices.Min(v), hi: slices.Max(v), n: len(v)}
}

func (r ratio) String() string {
	if math.IsNaN(r.med) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx (rounds %.2f..%.2f, n=%d)", r.med, r.lo, r.hi, r.n)
}

func size(p int) string {
	switch {
	case p >= 1<<10 && p%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", p>>10)
	default:
		return fmt.Sprintf("%d B", p)
	}
}

func dur(ns float64) string {
	if math.IsNaN(ns) || ns == 0 {
		return "-"
	}
	d := time.Duration(ns)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	s := fmt.Sprintf("%.0f", v)
	// thousands separators
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

var sysLabel = map[string]string{
	sysSky:  "skycall Call",
	sysGRPC: "gRPC-Go unary",
	sysPA:   "Proto.Actor RequestFuture",
	sysCeil: "ceiling (plain TCP)",
	sysRR:   "ceiling: request/response, c callers",
}

func (b *bench) print(w io.Writer, mem memResult, al allocResult) {
	o := b.o
	fmt.Fprintf(w, "== Call: echo on loopback, c goroutines each calling back to back; medians of %d rounds\n", o.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tc\tpayload\tcalls/s\tMB/s\tp50\tp99\tspread\t")
	for _, cc := range callCases {
		for _, sys := range []string{sysSky, sysGRPC, sysPA, sysCeil, sysRR} {
			if sys == sysRR && cc.conc == 1 {
				continue
			}
			label := sysLabel[sys]
			if sys == sysSky && o.callAppend {
				label = "skycall CallAppend"
			}
			if sys == sysCeil {
				if cc.conc == 1 {
					label = "ceiling: sequential round trips"
				} else {
					label = "ceiling: pipelined frames, 1 conn"
				}
			}
			if sys == sysPA && b.pa == nil {
				fmt.Fprintf(tw, "%s\t%d\t%s\tprotoactor: unavailable (%v)\t\t\t\t\t\n", label, cc.conc, size(cc.payload), b.paNo)
				continue
			}
			b.row(tw, label, fmt.Sprint(cc.conc), cc.payload, callKey(sys, cc.conc, cc.payload), true)
		}
	}
	tw.Flush()

	fmt.Fprintf(w, "\n== Send: fire-and-forget from one goroutine for %v, then one call to confirm every message arrived; msgs/s counts delivered messages up to that answer\n", o.duration)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\t\tpayload\tmsgs/s\tMB/s\tlost\t\tspread\t")
	for _, p := range sendPayloads {
		b.row(tw, "skycall Send", "", p, sendKey(sysSky, p), false)
		if p == 32 {
			if b.pa == nil {
				fmt.Fprintf(tw, "Proto.Actor Send\t\t%s\tprotoactor: unavailable (%v)\t\t\t\t\t\n", size(p), b.paNo)
			} else {
				b.row(tw, "Proto.Actor Send", "", p, sendKey(sysPA, p), false)
			}
			b.row(tw, "ceiling: one-way frames", "", p, sendKey(sysCeil, p), false)
		}
	}
	tw.Flush()

	fmt.Fprintf(w, "\n== Ratios of throughput (median of the per-round ratios)\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rat := map[string]ratio{}
	for _, cc := range callCases {
		name := fmt.Sprintf("Call c=%d %s", cc.conc, size(cc.payload))
		rat["grpc "+name] = b.ratio(callKey(sysSky, cc.conc, cc.payload), callKey(sysGRPC, cc.conc, cc.payload))
		rat["pa "+name] = b.ratio(callKey(sysSky, cc.conc, cc.payload), callKey(sysPA, cc.conc, cc.payload))
		rat["ceil "+name] = b.ratio(callKey(sysSky, cc.conc, cc.payload), callKey(sysCeil, cc.conc, cc.payload))
		rat["rr "+name] = b.ratio(callKey(sysSky, cc.conc, cc.payload), callKey(sysRR, cc.conc, cc.payload))
		rat["rrceil "+name] = b.ratio(callKey(sysRR, cc.conc, cc.payload), callKey(sysCeil, cc.conc, cc.payload))
	}
	rat["pa Send 32 B"] = b.ratio(sendKey(sysSky, 32), sendKey(sysPA, 32))
	rat["ceil Send 32 B"] = b.ratio(sendKey(sysSky, 32), sendKey(sysCeil, 32))
	for _, peer := range []struct{ key, label string }{{"grpc", "skycall/gRPC-Go"}, {"pa", "skycall/Proto.Actor"}, {"ceil", "skycall/ceiling"}} {
		for _, cc := range callCases {
			name := fmt.Sprintf("Call c=%d %s", cc.conc, size(cc.payload))
			fmt.Fprintf(tw, "%s\t%s\t%v\n", peer.label, name, rat[peer.key+" "+name])
		}
		if peer.key != "grpc" {
			fmt.Fprintf(tw, "%s\t%s\t%v\n", peer.label, "Send 32 B", rat[peer.key+" Send 32 B"])
		}
	}
	for _, peer := range []struct{ key, label string }{{"rr", "skycall/ceiling-rr"}, {"rrceil", "ceiling-rr/ceiling"}} {
		for _, cc := range callCases {
			if cc.conc > 1 {
				name := fmt.Sprintf("Call c=%d %s", cc.conc, size(cc.payload))
				fmt.Fprintf(tw, "%s\t%s\t%v\n", peer.label, name, rat[peer.key+" "+name])
			}
		}
	}
	tw.Flush()

	pre := b.preStats()
	fmt.Fprintf(w, "\n== Pre-ready path: %d calls (32 B) queued for a not-ready node, then the node made ready; medians of %d rounds\n", o.preN, len(b.pre))
	if pre.err != nil {
		fmt.Fprintf(w, "error: %v\n", pre.err)
	} else {
		fmt.Fprintf(w, "ready -> last reply %v; connect+confirm %v; added per queued call %v\n", pre.drain, pre.connect, pre.addedPer)
		fmt.Fprintf(w, "same %d calls released at once on a ready connection: last reply after %v, %v per call\n", o.preN, pre.burst, pre.readyPer)
	}

	fmt.Fprintf(w, "\n== Memory (runtime.MemStats after GC: HeapAlloc + StackInuse deltas)\n")
	if mem.err != nil {
		fmt.Fprintf(w, "error: %v\n", mem.err)
	} else {
		fmt.Fprintf(w, "idle connected node (one 32 B call made, %d nodes, in-process raw peer): %.1f KiB gross per node, %.1f KiB of it the peer's side of a bare connection, %.1f KiB the Client's (heap %.1f KiB, goroutine stacks %.1f KiB); %.1f goroutines per node (peer's included)\n",
			mem.nodes, mem.grossPerNode/1024, mem.peerPerConn/1024, mem.clientPerNode/1024, mem.clientHeap/1024, mem.clientStack/1024, mem.goroutines)
		fmt.Fprintf(w, "%d queued 32 B Sends to a not-ready node: %.2f MiB (%.0f B per Send); after ready, %d of them confirmed delivered\n",
			mem.queued, mem.queuedBytes/(1<<20), mem.queuedBytes/float64(mem.queued), mem.delivered)
	}

	fmt.Fprintf(w, "\n== Allocations per op (the Client alone, against a zero-allocation raw peer in the process)\n")
	if al.err != nil {
		fmt.Fprintf(w, "error: %v\n", al.err)
	} else {
		fmt.Fprintf(w, "Send 32 B %.4f; Call 32 B c=1 %.4f, c=64 %.4f; wire: decode response %.4f, decode request %.4f, encode request %.4f\n",
			al.send, al.call, al.call64, al.decodeResp, al.decodeReq, al.encodeReq)
	}

	fmt.Fprintf(w, "\n== Targets (a MISS is reported, not fatal)\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	mark := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	ratioTarget := func(label, key string, want float64) {
		r := rat[key]
		if math.IsNaN(r.med) {
			reason := "no measurement"
			if strings.HasPrefix(key, "pa ") && b.pa == nil {
				reason = fmt.Sprintf("protoactor: unavailable (%v)", b.paNo)
			}
			fmt.Fprintf(tw, "n/a\t%s\t%s\n", label, reason)
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", mark(r.med >= want), label, r)
	}
	for _, p := range []int{32, 4096} {
		ratioTarget(fmt.Sprintf("Call c=1 %s >= 1.8x gRPC-Go", size(p)), fmt.Sprintf("grpc Call c=1 %s", size(p)), 1.8)
	}
	for _, p := range []int{32, 4096} {
		ratioTarget(fmt.Sprintf("Call c=64 %s >= 6x gRPC-Go", size(p)), fmt.Sprintf("grpc Call c=64 %s", size(p)), 6)
	}
	ratioTarget("Send 32 B >= 1.5x Proto.Actor Send", "pa Send 32 B", 1.5)
	for _, p := range []int{32, 4096} {
		ratioTarget(fmt.Sprintf("Call c=64 %s >= 3x Proto.Actor RequestFuture", size(p)), fmt.Sprintf("pa Call c=64 %s", size(p)), 3)
	}
	if al.err != nil {
		fmt.Fprintf(tw, "n/a\tallocations\terror: %v\n", al.err)
	} else {
		fmt.Fprintf(tw, "%s\tSend <= 1 alloc/op amortized\t%.2f allocs/op\n", mark(al.send <= 1), al.send)
		fmt.Fprintf(tw, "%s\tCall <= 3 allocs/op\t%.2f allocs/op (c=1), %.2f (c=64, not a target)\n", mark(al.call <= 3), al.call, al.call64)
		// The process has other goroutines (timers, the idle systems), so
		// "0" is under one allocation per 100 decodes; go test -benchmem
		// on sender/wire gives the exact integer.
		fmt.Fprintf(tw, "%s\tframe decode 0 allocs/op\tresponse %.4f, request %.4f (0 = under 0.01)\n", mark(al.decodeResp < 0.01 && al.decodeReq < 0.01), al.decodeResp, al.decodeReq)
	}
	if pre.err != nil {
		fmt.Fprintf(tw, "n/a\tpre-ready drain\terror: %v\n", pre.err)
	} else {
		fmt.Fprintf(tw, "%s\tqueued call adds <= 2x a ready call beyond connect+confirm\t%v added per queued call vs %v per call on a ready connection (%.2fx)\n",
			mark(pre.addedPer <= 2*pre.readyPer), pre.addedPer, pre.readyPer, float64(pre.addedPer)/float64(pre.readyPer))
	}
	if mem.err != nil {
		fmt.Fprintf(tw, "n/a\tmemory\terror: %v\n", mem.err)
	} else {
		fmt.Fprintf(tw, "%s\tidle connected node <= 64 KiB\t%.1f KiB for the Client (%.1f KiB gross with the in-process peer's side)\n",
			mark(mem.clientPerNode <= 64<<10), mem.clientPerNode/1024, mem.grossPerNode/1024)
		fmt.Fprintf(tw, "%s\t10,000 queued 32 B sends <= 2 MiB\t%.2f MiB for %d sends\n",
			mark(mem.queuedBytes*10000/float64(mem.queued) <= 2<<20 && mem.delivered == int64(mem.queued)), mem.queuedBytes/(1<<20), mem.queued)
	}
	tw.Flush()
	b.printCeilingTargets(w, rat)

	var noisy []string
	for key := range b.results {
		if s, _ := b.stats(key); s.ok > 0 && s.spread/2 > 0.20 {
			noisy = append(noisy, key)
		}
	}
	if len(noisy) > 0 {
		slices.Sort(noisy)
		fmt.Fprintf(w, "\nNOTE: %d measurements varied by more than ±20%% across rounds (%s): the machine was busy; the per-round ratios above are less affected, but rerun with more -rounds on a quieter machine before drawing conclusions from them.\n",
			len(noisy), strings.Join(noisy, ", "))
	}
}

func (b *bench) row(tw io.Writer, label, conc string, payload int, key string, latency bool) {
	s, present := b.stats(key)
	if !present {
		return
	}
	if s.ok == 0 {
		fmt.Fprintf(tw, "%s\t%s\t%s\terror: %v\t\t\t\t\t\n", label, conc, size(payload), s.err)
		return
	}
	p50, p99 := dur(s.p50), dur(s.p99)
	if !latency {
		p50, p99 = fmt.Sprint(s.lost), ""
	}
	note := ""
	if s.err != nil {
		note = fmt.Sprintf("  (%d rounds failed: %v)", len(b.results[key])-s.ok, s.err)
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t±%.0f%%\t%s\n", label, conc, size(payload), num(s.rate), s.mbps, p50, p99, 100*s.spread/2, note)
}

type preStats struct {
	drain, connect, burst, addedPer, readyPer time.Duration
	err                                       error
}

func (b *bench) preStats() (p preStats) {
	var drain, connect, burst, added, ready []float64
	for _, r := range b.pre {
		if r.err != nil {
			p.err = r.err
			return p
		}
		drain = append(drain, float64(r.drain))
		connect = append(connect, float64(r.connect))
		burst = append(burst, float64(r.burst))
		added = append(added, float64(r.addedPer))
		ready = append(ready, float64(r.readyPer))
	}
	if len(drain) == 0 {
		p.err = fmt.Errorf("not measured")
		return p
	}
	return preStats{
		drain: time.Duration(median(drain)), connect: time.Duration(median(connect)), burst: time.Duration(median(burst)),
		addedPer: time.Duration(median(added)), readyPer: time.Duration(median(ready)),
	}
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "cpu unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "cpu unknown"
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// printCeilingTargets prints the ceiling goals: how close skycall comes
// to plain TCP with the same framing (the ceiling), as PASS/MISS lines.
func (b *bench) printCeilingTargets(w io.Writer, rat map[string]ratio) {
	fmt.Fprintf(w, "\n== Targets against the ceiling (plain Go TCP, same framing, no library), medians of the per-round ratios over %d rounds\n", b.o.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(label string, r ratio, ok bool) {
		switch {
		case math.IsNaN(r.med):
			fmt.Fprintf(tw, "n/a\t%s\tno measurement\n", label)
		case ok:
			fmt.Fprintf(tw, "PASS\t%s\t%v\n", label, r)
		default:
			fmt.Fprintf(tw, "MISS\t%s\t%v\n", label, r)
		}
	}
	for _, g := range []struct {
		label, key string
		want       float64
	}{
		{"Call c=1 32 B >= 0.80x ceiling", "ceil Call c=1 32 B", 0.80},
		{"Call c=1 4 KiB >= 0.75x ceiling", "ceil Call c=1 4 KiB", 0.75},
		{"Call c=64 4 KiB >= 0.80x ceiling (pipelined frames)", "ceil Call c=64 4 KiB", 0.80},
		{"Send 32 B >= 0.30x ceiling (one-way frames)", "ceil Send 32 B", 0.30},
	} {
		r := rat[g.key]
		line(g.label, r, r.med >= g.want)
	}
	// The pipelined ceiling pays no wake-up per call; a request/response
	// API for c goroutines does (ceilRR): what that alone costs.
	fmt.Fprintf(tw, "ref\tCall c=64 4 KiB: plain-Go request/response, 64 callers (ceiling-rr) makes %v the pipelined ceiling; skycall makes %v ceiling-rr\n",
		rat["rrceil Call c=64 4 KiB"], rat["rr Call c=64 4 KiB"])
	// Latency: skycall's p50 over the ceiling's, per round (lower is better).
	sky, ceil := b.results[callKey(sysSky, 1, 32)], b.results[callKey(sysCeil, 1, 32)]
	var v []float64
	for i := range min(len(sky), len(ceil)) {
		if sky[i].err == nil && ceil[i].err == nil && ceil[i].p50 > 0 {
			v = append(v, float64(sky[i].p50)/float64(ceil[i].p50))
		}
	}
	r := ratio{med: math.NaN()}
	if len(v) > 0 {
		r = ratio{med: median(v), lo: slices.Min(v), hi: slices.Max(v), n: len(v)}
	}
	s, _ := b.stats(callKey(sysSky, 1, 32))
	c, _ := b.stats(callKey(sysCeil, 1, 32))
	line(fmt.Sprintf("Call c=1 32 B p50 <= 1.25x ceiling p50 (%s vs %s)", dur(s.p50), dur(c.p50)), r, r.med <= 1.25)
	tw.Flush()
}

// profileSend profiles skycall Send of payload bytes, the Server's @count
// included (one process), as sendThroughput measures it.
func profileSend(o opts, sky *skySys, payload int) error {
	p := make([]byte, payload)
	warm := o
	warm.duration = o.warmup
	sky.sendThroughput(p, warm)
	f, err := os.Create(o.cpuprofile)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	// One measurement stops at maxSends, so repeat it until rounds x
	// duration has passed: a profile of half a second has too few samples.
	r0, w0 := syscallCounts()
	var r result
	for end := time.Now().Add(time.Duration(o.rounds) * o.duration); r.err == nil && time.Now().Before(end); {
		m := sky.sendThroughput(p, o)
		r.ops, r.elapsed, r.err = r.ops+m.ops, r.elapsed+m.elapsed, m.err
	}
	r1, w1 := syscallCounts()
	pprof.StopCPUProfile()
	if r.err != nil {
		return r.err
	}
	fmt.Printf("skycall Send %s under the profiler: %.0f msgs/s delivered; profile in %s\n", size(payload), r.rate(), o.cpuprofile)
	if r.ops > 0 {
		fmt.Printf("syscalls per message, Client and Server together: %.3f writes, %.3f reads (from /proc/self/io)\n",
			float64(w1-w0)/float64(r.ops), float64(r1-r0)/float64(r.ops))
	}
	printShares(o.cpuprofile, r.ops, "message") // StopCPUProfile wrote it all
	return nil
}
