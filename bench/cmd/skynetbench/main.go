// Command skynetbench measures skycall against real skynet on loopback, with
// skynet -> skynet as the reference (1.0x):
//
//	skynet -> skynet          cluster.call / cluster.send between two skynet nodes
//	skynet -> relay -> skynet the same, through a relay (skycall-agent --relay)
//	skycall Client -> skynet  sender.Client calling a skynet node's service
//	skynet -> skycall Server  a skynet node calling a server.Server
//	skycall -> skycall        sender.Client calling a server.Server
//
// for cluster.call with 1 and 64 concurrent callers and for cluster.send
// (then one call that arrives behind the sends and returns their count).
// Every measurement is a fixed number of messages, and reports the rate,
// its ratio to skynet -> skynet in the same round, and the CPU time per
// message of the sending and of the receiving process, read from
// /proc/<pid>/stat (skynet, the skycall Server's and the relay's own
// processes) and getrusage (this process, which hosts the skycall Client),
// so that a reader sees which side is the bottleneck. Each side runs in its
// own process, the relay too; the process driving a skynet sender only
// waits for one call meanwhile.
//
// Then it measures the resident memory of a relay process given 1,000 node
// names and no traffic.
//
//	go run ./cmd/skynetbench          # 5 rounds
//	go run ./cmd/skynetbench -quick   # smoke run
//
// skynet comes from hack/skynet.sh (see test/skynetpeer); without it the
// command says why and how to enable it, and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

const payloadSize = 32

type opts struct {
	rounds       int
	calls1       int
	calls64      int
	sends        int
	only         string // measure this case only ("call c=1", "call c=64", "send"); "": all
	profile      string // the skycall Server process writes its CPU profile here
	relayProfile string // the relay process writes its CPU profile here
}

func main() {
	var o opts
	serve := flag.Bool("serve", false, "internal: run the skycall Server under measurement and print its address")
	relayTo := flag.String("relay", "", `internal: run a relay under measurement forwarding node "receiver" to this address, and print the relay's address for it`)
	relayIdle := flag.Int("relay-idle", 0, "internal: run a relay under measurement with this many idle node names")
	relayNames := flag.Int("relay-names", 1000, "node names given to the relay whose idle memory is measured")
	quick := flag.Bool("quick", false, "smoke run: 1 round, fewer messages")
	flag.IntVar(&o.rounds, "rounds", 5, "alternating rounds; every figure is the median over them")
	flag.IntVar(&o.calls1, "calls1", 10000, "calls per measurement with one caller")
	flag.IntVar(&o.calls64, "calls64", 50000, "calls per measurement with 64 concurrent callers")
	flag.IntVar(&o.sends, "sends", 100000, "sends per measurement")
	flag.StringVar(&o.only, "case", "", `measure one case only: "call c=1", "call c=64" or "send" (default: all)`)
	flag.StringVar(&o.profile, "server-cpuprofile", "", "write a CPU profile of the skycall Server process (the whole run) to this file")
	flag.StringVar(&o.relayProfile, "relay-cpuprofile", "", "write a CPU profile of the relay process of skynet -> relay -> skynet (the whole run) to this file")
	clientProfile := flag.String("client-cpuprofile", "", "write a CPU profile of this process, which hosts the skycall Client (the whole run), to this file")
	flag.Parse()
	if *serve {
		if err := serveChild(o.profile); err != nil {
			fmt.Fprintln(os.Stderr, "skynetbench -serve:", err)
			os.Exit(1)
		}
		return
	}
	if *relayTo != "" || *relayIdle > 0 {
		if err := relayChild(*relayTo, *relayIdle, o.relayProfile); err != nil {
			fmt.Fprintln(os.Stderr, "skynetbench relay:", err)
			os.Exit(1)
		}
		return
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		for name, v := range map[string]*int{"rounds": &o.rounds, "calls1": &o.calls1, "calls64": &o.calls64, "sends": &o.sends} {
			if !set[name] {
				*v = map[string]int{"rounds": 1, "calls1": 1000, "calls64": 5000, "sends": 10000}[name]
			}
		}
	}
	settle := 2 * time.Second
	if *quick {
		settle = 500 * time.Millisecond
	}
	if o.rounds < 1 || o.calls1 < 1 || o.calls64 < 64 || o.sends < 1 || *relayNames < 1 {
		fmt.Fprintln(os.Stderr, "skynetbench: -rounds, -calls1, -sends and -relay-names must be positive, -calls64 at least 64")
		os.Exit(2)
	}
	stopProfile, err := cpuProfile(*clientProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skynetbench: -client-cpuprofile:", err)
		os.Exit(1)
	}
	err = run(o, os.Stdout)
	stopProfile()
	if errors.Is(err, skynetpeer.ErrUnavailable) {
		fmt.Printf("== skynet rows: SKIPPED, %v\n%s\n", err, skynetpeer.HowToEnable)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "skynetbench:", err)
		os.Exit(1)
	}
	// The relay's memory needs no skynet.
	if err := relayMemory(os.Stdout, *relayNames, settle); err != nil {
		fmt.Fprintln(os.Stderr, "skynetbench: relay memory:", err)
		os.Exit(1)
	}
}

// The systems, each a sender and a receiver process.
const (
	sysSkySky   = iota // skynet -> skynet
	sysSkyRelay        // skynet -> relay -> skynet
	sysGoSky           // skycall Client -> skynet
	sysSkyGo           // skynet -> skycall Server
	sysGoGo            // skycall Client -> skycall Server
	numSys
)

var sysLabel = [numSys]string{"skynet -> skynet", "skynet -> relay -> skynet", "skycall Client -> skynet", "skynet -> skycall Server", "skycall -> skycall"}

type benchCase struct {
	label string
	send  bool
	conc  int
	n     int
}

type result struct {
	elapsed time.Duration
	n       int
	sendCPU time.Duration
	recv    skynetpeer.Usage // the receiving process's: CPU time, its kernel part, system calls
	relay   skynetpeer.Usage // the relay's process's, for skynet -> relay -> skynet
	err     error
}

func (r result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

type env struct {
	a, b   *skynetpeer.Node // a sends (its driver service), b receives
	server *child           // the skycall Server's process
	relay  *child           // the relay's process: "relayed" in a's config, forwarding to b
	goAddr string
	c      *sender.Client
	ctx    context.Context
}

func run(o opts, w io.Writer) error {
	root, err := skynetpeer.RepoRoot()
	if err != nil {
		return err
	}
	if _, err := skynetpeer.Dir(); err != nil {
		return err
	}
	e := &env{ctx: context.Background()}
	defer e.close()
	if err := e.start(root, o); err != nil {
		return err
	}
	cases := []benchCase{
		{"call c=1", false, 1, o.calls1},
		{"call c=64", false, 64, o.calls64},
		{"send", true, 1, o.sends},
	}
	if o.only != "" {
		cases = slices.DeleteFunc(cases, func(bc benchCase) bool { return bc.label != o.only })
		if len(cases) == 0 {
			return fmt.Errorf(`-case %q: want "call c=1", "call c=64" or "send"`, o.only)
		}
	}
	fmt.Fprintf(w, "skynetbench: skynet %s vs skycall, %d B payload (skynet.pack'ed \"echo\"/\"push\" + string), %d rounds; %s, NumCPU=%d; load average %s\n",
		skynetpeer.Commit[:8], payloadSize, o.rounds, runtime.Version(), runtime.NumCPU(), loadAvg())
	fmt.Fprintln(w, "warming up...")
	for _, bc := range cases {
		small := bc
		small.n = min(bc.n, 500)
		for sys := range numSys {
			if r := e.measure(sys, small); r.err != nil {
				return fmt.Errorf("%s %s: %w", sysLabel[sys], bc.label, r.err)
			}
		}
	}
	results := map[string][numSys][]result{}
	for round := range o.rounds {
		fmt.Fprintf(w, "round %d/%d...\n", round+1, o.rounds)
		for _, bc := range cases {
			rs := results[bc.label]
			for sys := range numSys {
				rs[sys] = append(rs[sys], e.measure(sys, bc))
			}
			results[bc.label] = rs
		}
	}
	print(w, o, cases, results)
	return nil
}

func (e *env) start(root string, o opts) error {
	lua := filepath.Join(root, "test", "interop", "lua")
	// The skycall Server and the relay in processes of their own, so that
	// their CPU is their own.
	var line string
	var err error
	if e.server, line, err = startChild("skycall Server", "-serve", "-server-cpuprofile", o.profile); err != nil {
		return err
	}
	e.goAddr = strings.TrimPrefix(line, "addr ")

	if e.b, err = skynetpeer.StartNode(skynetpeer.Config{Name: "receiver", Start: "interop_main", LuaPath: []string{lua}}); err != nil {
		return err
	}
	if e.relay, line, err = startChild("relay", "-relay", e.b.Addr, "-relay-cpuprofile", o.relayProfile); err != nil {
		return err
	}
	relayAddr := strings.TrimPrefix(line, "addr ")
	dir, err := os.MkdirTemp("", "skynetbench-")
	if err != nil {
		return err
	}
	// The sender node knows the receiver under two names: its own address,
	// and the relay's for it, as skycall-agent --relay would write it.
	cfg := filepath.Join(dir, "clustername.lua")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "receiver = %q\nrelayed = %q\ngo = %q\n", e.b.Addr, relayAddr, e.goAddr), 0o644); err != nil {
		return err
	}
	if e.a, err = skynetpeer.StartNode(skynetpeer.Config{Name: "sender", Start: "interop_main", LuaPath: []string{lua}, Cluster: cfg, WorkDir: dir}); err != nil {
		return err
	}
	e.c = sender.New(registry.NewStatic(map[string]string{"sender": e.a.Addr, "receiver": e.b.Addr, "go": e.goAddr}),
		sender.WithCallTimeout(5*time.Minute))
	return nil
}

func (e *env) close() {
	if e.c != nil {
		e.c.Close()
	}
	for _, n := range []*skynetpeer.Node{e.a, e.b} {
		if n != nil {
			n.Stop()
		}
	}
	for _, c := range []*child{e.relay, e.server} {
		if c != nil {
			c.stop()
		}
	}
}

// measure runs one case on one system, with the CPU time of every process
// on the way.
func (e *env) measure(sys int, bc benchCase) result {
	// target is the receiving node; via the name the skynet sender calls
	// it by.
	target, via := "receiver", "receiver"
	switch sys {
	case sysSkyRelay:
		via = "relayed"
	case sysSkyGo, sysGoGo:
		target, via = "go", "go"
	}
	if bc.send {
		if _, err := e.c.CallValues(e.ctx, target, "@seq", "reset"); err != nil {
			return result{err: err}
		}
	}
	sendCPU := selfCPU
	if sys == sysSkySky || sys == sysSkyRelay || sys == sysSkyGo {
		sendCPU = e.a.CPUTime
	}
	recvPid := e.b.Pid()
	if target == "go" {
		recvPid = e.server.pid()
	}
	// usage reads the receiver's and, on the relay's row, the relay's.
	usage := func() (recv, rel skynetpeer.Usage, err error) {
		recv, err = skynetpeer.ProcessUsage(recvPid)
		if err == nil && sys == sysSkyRelay {
			rel, err = skynetpeer.ProcessUsage(e.relay.pid())
		}
		return recv, rel, err
	}
	s0, err1 := sendCPU()
	r0, l0, err2 := usage()
	var r result
	if sys == sysGoSky || sys == sysGoGo {
		r = e.goSends(target, bc)
	} else {
		r = e.skynetSends(via, bc)
	}
	s1, err3 := sendCPU()
	r1, l1, err4 := usage()
	if err := errors.Join(err1, err2, err3, err4); err != nil && r.err == nil {
		r.err = fmt.Errorf("CPU time: %w", err)
	}
	r.sendCPU, r.recv, r.relay = s1-s0, r1.Sub(r0), l1.Sub(l0)
	return r
}

// skynetSends has the sender node's driver run the case against target.
func (e *env) skynetSends(target string, bc benchCase) result {
	kind, addr := "call", "@echo"
	if bc.send {
		kind, addr = "send", "@seq"
	}
	got, err := e.c.CallValues(e.ctx, "sender", "@driver", "bench", target, addr, kind, bc.n, bc.conc, payloadSize)
	if err != nil {
		return result{err: err}
	}
	if len(got) != 3 || got[0] != true {
		return result{err: fmt.Errorf("skynet driver: %v", got)}
	}
	ns, _ := got[1].(int64)
	done, _ := got[2].(int64)
	r := result{elapsed: time.Duration(ns), n: bc.n}
	if int(done) != bc.n {
		r.err = fmt.Errorf("%d of %d messages confirmed", done, bc.n)
	}
	return r
}

// goSends runs the case from this process's Client against target.
func (e *env) goSends(target string, bc benchCase) result {
	s := strings.Repeat("x", payloadSize)
	start := time.Now()
	if bc.send {
		push, _ := luaseri.Pack("push", s)
		for range bc.n {
			if err := e.c.Send(e.ctx, target, "@seq", push); err != nil {
				return result{err: err}
			}
		}
		got, err := e.c.CallValues(e.ctx, target, "@seq", "count")
		if err != nil {
			return result{err: err}
		}
		r := result{elapsed: time.Since(start), n: bc.n}
		if len(got) != 1 || got[0] != int64(bc.n) {
			r.err = fmt.Errorf("count %v after %d sends", got, bc.n)
		}
		return r
	}
	echo, _ := luaseri.Pack("echo", s)
	var left atomic.Int64
	left.Store(int64(bc.n))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range bc.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if _, err := e.c.Call(e.ctx, target, "@echo", echo); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return result{elapsed: time.Since(start), n: bc.n, err: firstErr}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// selfCPU is this process's user + system CPU time.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// serveChild is the skycall Server under measurement: @echo replies with
// its payload and @seq counts pushes ("count", "reset"), both sequential
// like a skynet service. It prints "addr host:port" and serves until its
// standard input closes (the parent exited).
func serveChild(profile string) error {
	stopProfile, err := cpuProfile(profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	srv := server.New("go")
	// The handlers keep nothing of a Request: they opt in to its reuse.
	if _, err := srv.HandleFunc("@echo", func(_ context.Context, req *server.Request) ([]byte, error) {
		return req.Payload, nil
	}, server.WithReuseRequests()); err != nil {
		return err
	}
	count := 0
	countPacked := func() ([]byte, error) { return luaseri.Pack(count) }
	if _, err := srv.HandleFunc("@seq", func(_ context.Context, req *server.Request) ([]byte, error) {
		if req.Push {
			count++
			return nil, nil
		}
		args, err := luaseri.Unpack(req.Payload)
		if err != nil || len(args) == 0 {
			return nil, fmt.Errorf("seq: bad call (%v)", err)
		}
		switch args[0] {
		case "count":
			return countPacked()
		case "reset":
			count = 0
			return luaseri.Pack(true)
		}
		return nil, fmt.Errorf("seq: unknown command %v", args[0])
	}, server.WithReuseRequests()); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("addr %s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, server.ErrClosed) {
		return err
	}
	return nil
}

// cpuProfile profiles this process into the file at path until stop; with
// path "" it does nothing.
func cpuProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
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

func print(w io.Writer, o opts, cases []benchCase, results map[string][numSys][]result) {
	fmt.Fprintf(w, "\n== skynet rows: %d B, medians of %d rounds; ratio = rate / skynet -> skynet's rate in the same round; CPU per message of the sending, the relaying (skynet -> relay -> skynet only) and the receiving process (a call counts its reply)\n", payloadSize, o.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tsystem\tmsgs\tmsgs/s\tvs skynet\tsender CPU/msg\trelay CPU/msg\treceiver CPU/msg\tof which kernel\treceiver syscalls/msg\t")
	for _, bc := range cases {
		rs := results[bc.label]
		for sys := range numSys {
			var rate, ratio, scpu, lcpu, rcpu, rsys, rcalls []float64
			var firstErr error
			for i, r := range rs[sys] {
				if r.err != nil {
					firstErr = cmpErr(firstErr, r.err)
					continue
				}
				rate = append(rate, r.rate())
				scpu = append(scpu, float64(r.sendCPU)/float64(r.n))
				lcpu = append(lcpu, float64(r.relay.CPU())/float64(r.n))
				rcpu = append(rcpu, float64(r.recv.CPU())/float64(r.n))
				rsys = append(rsys, float64(r.recv.System)/float64(r.n))
				rcalls = append(rcalls, float64(r.recv.Syscalls())/float64(r.n))
				if ref := rs[sysSkySky][i]; ref.err == nil {
					ratio = append(ratio, r.rate()/ref.rate())
				}
			}
			label := bc.label
			if sys > 0 {
				label = ""
			}
			if len(rate) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%d\terror: %v\t\t\t\t\t\t\t\n", label, sysLabel[sys], bc.n, firstErr)
				continue
			}
			note := ""
			if firstErr != nil {
				note = fmt.Sprintf("  (%d rounds failed: %v)", len(rs[sys])-len(rate), firstErr)
			}
			relayCPU := "-"
			if sys == sysSkyRelay {
				relayCPU = us(median(lcpu))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2fx\t%s\t%s\t%s\t%s\t%.2f\t%s\n", label, sysLabel[sys], bc.n, median(rate), median(ratio),
				us(median(scpu)), relayCPU, us(median(rcpu)), us(median(rsys)), median(rcalls), note)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "CPU times come from /proc/<pid>/stat (10 ms ticks) for skynet, the relay's and the skycall Server's process, getrusage for the skycall Client's (this) process; everything shares the machine's cores. The receiver's kernel time (stime) and its read and write system calls (/proc/<pid>/io) show how much of its CPU no user-space change can remove.")
	printTargets(w, o, cases, results)
}

// printTargets prints the goals for skycall on either side of a skynet
// link, and for the relay between two skynet nodes, as PASS/MISS lines: the
// rate against skynet -> skynet, and the skycall Server's CPU per message
// against a skynet receiving node's, each the median of per-round ratios
// (both sides measured in the same round).
func printTargets(w io.Writer, o opts, cases []benchCase, results map[string][numSys][]result) {
	fmt.Fprintf(w, "\n== Targets against skynet -> skynet, medians of the per-round ratios over %d rounds; load average now %s\n", o.rounds, loadAvg())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// perRound is the median, smallest and largest over the rounds of
	// f(system's result, skynet -> skynet's result).
	perRound := func(rs [numSys][]result, sys int, f func(r, ref result) float64) (med, lo, hi float64, n int) {
		var v []float64
		for i, r := range rs[sys] {
			if ref := rs[sysSkySky][i]; r.err == nil && ref.err == nil {
				v = append(v, f(r, ref))
			}
		}
		if len(v) == 0 {
			return math.NaN(), 0, 0, 0
		}
		return median(v), slices.Min(v), slices.Max(v), len(v)
	}
	line := func(label string, med, lo, hi float64, n int, ok bool) {
		switch {
		case n == 0:
			fmt.Fprintf(tw, "n/a\t%s\tno measurement\n", label)
		case ok:
			fmt.Fprintf(tw, "PASS\t%s\t%.2fx (rounds %.2f..%.2f, n=%d)\n", label, med, lo, hi, n)
		default:
			fmt.Fprintf(tw, "MISS\t%s\t%.2fx (rounds %.2f..%.2f, n=%d)\n", label, med, lo, hi, n)
		}
	}
	rate := func(r, ref result) float64 { return r.rate() / ref.rate() }
	for _, bc := range cases {
		if bc.conc != 1 {
			continue
		}
		for _, sys := range []int{sysGoSky, sysSkyGo} {
			med, lo, hi, n := perRound(results[bc.label], sys, rate)
			line(fmt.Sprintf("%s: %s >= 1.3x skynet -> skynet", bc.label, sysLabel[sys]), med, lo, hi, n, med >= 1.3)
		}
	}
	relayGoal := map[string]float64{"call c=1": 0.8, "call c=64": 1.0, "send": 1.0}
	for _, bc := range cases {
		goal := relayGoal[bc.label]
		med, lo, hi, n := perRound(results[bc.label], sysSkyRelay, rate)
		line(fmt.Sprintf("%s: %s >= %.1fx skynet -> skynet", bc.label, sysLabel[sysSkyRelay], goal), med, lo, hi, n, med >= goal)
	}
	recvCPU := func(r, ref result) float64 {
		return (float64(r.recv.CPU()) / float64(r.n)) / (float64(ref.recv.CPU()) / float64(ref.n))
	}
	// The kernel's floor: the Server's kernel time alone, per message, over
	// the skynet receiver's whole CPU per message. A goal below it cannot be
	// met by anything the Server does in user space.
	recvKernel := func(r, ref result) float64 {
		return (float64(r.recv.System) / float64(r.n)) / (float64(ref.recv.CPU()) / float64(ref.n))
	}
	serverCalls := func(r, _ result) float64 { return float64(r.recv.Syscalls()) / float64(r.n) }
	skynetCalls := func(_, ref result) float64 { return float64(ref.recv.Syscalls()) / float64(ref.n) }
	for _, bc := range cases {
		rs := results[bc.label]
		med, lo, hi, n := perRound(rs, sysSkyGo, recvCPU)
		line(fmt.Sprintf("%s: skycall Server fed by skynet, CPU/msg <= 0.25x a skynet receiving node's", bc.label), med, lo, hi, n, med <= 0.25)
		kmed, klo, khi, kn := perRound(rs, sysSkyGo, recvKernel)
		if kn == 0 {
			continue
		}
		sc, _, _, _ := perRound(rs, sysSkyGo, serverCalls)
		kc, _, _, _ := perRound(rs, sysSkyGo, skynetCalls)
		verdict := "the rest of the distance is user space"
		if kmed > 0.25 {
			verdict = "over 0.25x: the goal is below what the kernel alone takes"
		}
		fmt.Fprintf(tw, "floor\t%s: of which the Server's kernel time\t%.2fx (rounds %.2f..%.2f, n=%d); syscalls/msg %.2f, skynet's receiver %.2f; %s\n",
			bc.label, kmed, klo, khi, kn, sc, kc, verdict)
	}
	tw.Flush()
}

func us(ns float64) string {
	if math.IsNaN(ns) {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", ns/1e3)
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
