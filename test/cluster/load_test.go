package cluster_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/test/cluster"
)

// loadNodes are the nodes of cluster.RollingNodesManifest, one per pod.
var loadNodes = []string{"game-0", "game-1", "game-2"}

// loadRun is a namespace of its own holding cluster.RollingNodesManifest (3
// Go nodes under a ClusterNodeSet, set up as docs/rolling-restarts.md says)
// and the sender pod running its load: 64 concurrent callers and an ordered
// push stream per node. Each node process records the pushes it handles in
// a host directory (the test runs on the cluster's only node), so that what
// a pod received outlives it.
type loadRun struct {
	j       *journey
	ns      string
	record  string // the host directory of the nodes' records
	addr    string // the sender pod's control address
	stopped bool
}

// startLoad sets up namespace ns and starts the load, once the sender is
// connected to every node. Everything of it goes when the test ends.
func startLoad(t *testing.T, ns string) *loadRun {
	t.Helper()
	c := sharedCluster(t)
	ctx := context.Background()
	r := &loadRun{j: &journey{c: c}, ns: ns}
	j := r.j

	var err error
	if r.record, err = os.MkdirTemp("/var/tmp", "skycall-"+ns+"-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(r.record) })
	if err := os.Chmod(r.record, 0o777); err != nil { // the pods run as 65532
		t.Fatal(err)
	}

	// The operator, binding the sender role in this namespace. Another test
	// may have installed and uninstalled it before: install again.
	j.kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { _, _ = c.Kubectl(ctx, "delete", "namespace", ns, "--wait=false") })
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			c.DumpPods(ctx, &b)
			t.Logf("state of the cluster:\n%s", b.String())
		}
	})
	j.helm(t, "upgrade", "--install", release, "charts/skycall", "-n", system, "--create-namespace",
		"--set", "image.repository="+cluster.ManagerImage, "--set", "image.tag="+cluster.ImageTag,
		"--set", "image.pullPolicy=Never", "--set", "sender.namespaces={"+ns+"}", "--wait", "--timeout=3m")
	j.apply(t, fmt.Sprintf(cluster.RollingNodesManifest, ns, r.record))
	j.apply(t, cluster.SenderManifestIn(ns))
	eventually(t, 3*time.Minute, "ClusterNodeSet game 3/3 ready and the sender pod Ready", func() (bool, string) {
		ready := j.get(t, ns, "clusternodeset/game", `{.status.ready}`)
		sender := j.get(t, ns, "pod/sender", `{.status.conditions[?(@.type=="Ready")].status}`)
		return ready == "3" && sender == "True", fmt.Sprintf("set ready %q, sender Ready=%q", ready, sender)
	})
	r.addr = net.JoinHostPort(j.podIP(t, ns, "sender"), cluster.SenderPort)

	to := strings.Join(loadNodes, ",")
	if _, err := cluster.SenderGet(ctx, r.addr, "/load/start?to="+to+"&callers=64&callevery=100ms&pushevery=20ms&max=5m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !r.stopped {
			_, _ = cluster.SenderGet(ctx, r.addr, "/load/stop")
		}
	})
	r.waitConnected(t, "the sender connected to every node")
	return r
}

// waitConnected waits until the sender's connection to every node is ready.
func (r *loadRun) waitConnected(t *testing.T, what string) {
	t.Helper()
	eventually(t, time.Minute, what, func() (bool, string) {
		var states []string
		for _, n := range loadNodes {
			states = append(states, cluster.SenderState(context.Background(), r.addr, n))
		}
		return !slices.ContainsFunc(states, func(s string) bool { return s != "ready" }), strings.Join(states, " ")
	})
}

// stop ends the load and returns the sender's report. The sender answers
// once every call has ended (each within its call timeout) and the queues
// are empty or a minute has gone: five minutes bound both.
func (r *loadRun) stop(t *testing.T) loadReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := cluster.SenderGet(ctx, r.addr, "/load/stop")
	r.stopped = true
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the sender's report:\n%s", out)
	return parseLoadReport(t, out)
}

// records reads every node's record once it holds all the pushes the
// sender sent but those it counted dropped, or after 30 s: a push is
// recorded a little after the node handles it.
func (r *loadRun) records(t *testing.T, rep loadReport) map[string]*streamRecord {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		got := readRecords(t, r.record)
		done := true
		for _, n := range loadNodes {
			if got[n] == nil {
				got[n] = &streamRecord{seen: map[int]bool{}}
			}
			done = done && got[n].distinct() >= rep.pushes[n]-rep.dropped[n]
		}
		if done || time.Now().After(deadline) {
			return got
		}
	}
}

// checkStream logs node's push figures and fails the test if a push was
// reordered or duplicated, or lost without the sender counting it dropped;
// it returns the pushes lost.
func checkStream(t *testing.T, node string, s *streamRecord, rep loadReport) (lost []int) {
	t.Helper()
	lost = s.lost(rep.pushes[node])
	t.Logf("%s: pushes sent %d, delivered %d, lost %d %v, reordered %d, duplicated %d, max delivery delay %v; dropped by the sender %d (%s); node processes %d",
		node, rep.pushes[node], s.distinct(), len(lost), abbreviate(lost), s.reordered, s.duplicated,
		s.maxDelay.Round(time.Millisecond), rep.dropped[node], rep.droppedWhy[node], len(s.procs))
	if s.reordered != 0 || s.duplicated != 0 {
		t.Errorf("%s: %d pushes reordered and %d duplicated, want none", node, s.reordered, s.duplicated)
	}
	if len(lost) > rep.dropped[node] {
		t.Errorf("%s: %d pushes lost %v but the sender counted only %d dropped: lost silently", node, len(lost), abbreviate(lost), rep.dropped[node])
	}
	return lost
}

// loadReport is the sender's /load/stop answer.
type loadReport struct {
	callsOK     int
	callsFailed map[string]int    // "node kind"
	maxCall     time.Duration     // the slowest call that succeeded
	maxFailed   time.Duration     // the slowest that failed
	callTimeout time.Duration     // the sender's WithCallTimeout
	pushes      map[string]int    // sent, per node
	dropped     map[string]int    // skycall_sender_dropped_total, all reasons, per node
	droppedWhy  map[string]string // per node: "reason n, ..."
}

// failedTo is the number of failed calls to node, by kind.
func (r loadReport) failedTo(node string) map[string]int {
	m := map[string]int{}
	for k, n := range r.callsFailed {
		if nd, kind, _ := strings.Cut(k, " "); nd == node {
			m[kind] = n
		}
	}
	return m
}

func parseLoadReport(t *testing.T, out string) loadReport {
	t.Helper()
	r := loadReport{callsFailed: map[string]int{}, pushes: map[string]int{}, dropped: map[string]int{}, droppedWhy: map[string]string{}}
	duration := func(line, s string) time.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Errorf("the sender's report line %q: %v", line, err)
		}
		return d
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		n, _ := strconv.Atoi(f[len(f)-1])
		switch {
		case len(f) == 3 && f[0] == "calls" && f[1] == "ok":
			r.callsOK = n
		case len(f) == 5 && f[0] == "calls" && f[1] == "failed":
			r.callsFailed[f[2]+" "+f[3]] = n
		case len(f) == 4 && f[0] == "call" && f[1] == "max" && f[2] == "latency":
			r.maxCall = duration(line, f[3])
		case len(f) == 4 && f[0] == "call" && f[1] == "max" && f[2] == "failed":
			r.maxFailed = duration(line, f[3])
		case len(f) == 3 && f[0] == "call" && f[1] == "timeout":
			r.callTimeout = duration(line, f[2])
		case len(f) == 4 && f[0] == "pushes" && f[1] == "sent":
			r.pushes[f[2]] = n
		case len(f) == 4 && f[0] == "dropped":
			r.dropped[f[1]] += n
			r.droppedWhy[f[1]] = strings.TrimPrefix(r.droppedWhy[f[1]]+fmt.Sprintf(", %s %d", f[2], n), ", ")
		case f[0] == "pushes" || f[0] == "queued":
			if n != 0 {
				t.Errorf("the sender reports %q: a push not issued, or still queued at the end", line)
			}
		default:
			t.Errorf("unexpected line in the sender's report: %q", line)
		}
	}
	return r
}

// streamRecord is what the processes of one node recorded of its push
// stream, in the order they handled it.
type streamRecord struct {
	seqs       []int
	seen       map[int]bool
	reordered  int // pushes handled after one issued later
	duplicated int
	maxDelay   time.Duration
	procs      []*processRecord // in the order they started
}

// processRecord is one node process's record.
type processRecord struct {
	started                   time.Time
	pushes                    int
	first, last               int       // sequence numbers of the first and last push it handled
	firstSent                 time.Time // when the first was issued
	firstHandled, lastHandled time.Time
	events                    map[string]time.Time
}

func (r *streamRecord) distinct() int { return len(r.seen) }

// lost lists the sequence numbers 1..sent no process recorded.
func (r *streamRecord) lost(sent int) []int {
	var lost []int
	for i := 1; i <= sent; i++ {
		if !r.seen[i] {
			lost = append(lost, i)
		}
	}
	return lost
}

// readRecords reads the records (see skycall-demo's recorder) of every
// node process, per node in the order the processes started.
func readRecords(t *testing.T, dir string) map[string]*streamRecord {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	// NAME-STARTNANOS.log: the same number of digits, so names sort by
	// start within a node.
	sort.Strings(files)
	got := map[string]*streamRecord{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(filepath.Base(f), ".log")
		dash := strings.LastIndex(base, "-")
		started, _ := strconv.ParseInt(base[dash+1:], 10, 64)
		r := got[base[:dash]]
		if r == nil {
			r = &streamRecord{seen: map[int]bool{}}
			got[base[:dash]] = r
		}
		p := &processRecord{started: time.Unix(0, started), events: map[string]time.Time{}}
		r.procs = append(r.procs, p)
		for _, line := range strings.Split(string(b), "\n") {
			var node, what string
			var seq int
			var sent, recv, at int64
			// A line being written as we read is incomplete: skip it.
			if n, _ := fmt.Sscanf(line, "event %s %d", &what, &at); n == 2 {
				p.events[what] = time.Unix(0, at)
				continue
			}
			if n, _ := fmt.Sscanf(line, "push %s %d %d %d", &node, &seq, &sent, &recv); n != 4 {
				continue
			}
			if p.pushes == 0 {
				p.first, p.firstSent, p.firstHandled = seq, time.Unix(0, sent), time.Unix(0, recv)
			}
			p.pushes++
			p.last, p.lastHandled = seq, time.Unix(0, recv)
			if len(r.seqs) > 0 && seq < r.seqs[len(r.seqs)-1] {
				r.reordered++
			}
			if r.seen[seq] {
				r.duplicated++
			}
			r.seen[seq] = true
			r.seqs = append(r.seqs, seq)
			r.maxDelay = max(r.maxDelay, time.Duration(recv-sent))
		}
	}
	return got
}

// abbreviate shows a list of sequence numbers, at most its first ten.
func abbreviate(seqs []int) string {
	if len(seqs) > 10 {
		return fmt.Sprintf("%v...", seqs[:10])
	}
	return fmt.Sprint(seqs)
}
