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

// rolling is the rolling-restart test's namespace: its own, so that it
// does not depend on what the journey left in game.
const rolling = "roll"

var rollingNodes = []string{"game-0", "game-1", "game-2"}

// TestRollingRestartLosesNothing: a StatefulSet of 3 Go nodes under a
// ClusterNodeSet, set up as docs/rolling-restarts.md says, is rolled twice
// (`kubectl rollout restart`) while a sender pod runs 64 concurrent
// callers and an ordered push stream to every node. The sender drains each
// node as its pod terminates and delivers what waited to the replacement:
// no push lost, reordered or duplicated, and no call failed. The report
// (t.Logf) has the figures: calls ok / failed by error, pushes sent /
// delivered / lost / reordered, the sender's dropped counts, the longest
// delivery delay beside the time a pod's replacement takes.
func TestRollingRestartLosesNothing(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	j := &journey{c: c}
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			c.DumpPods(ctx, &b)
			t.Logf("state of the cluster:\n%s", b.String())
		}
	})

	// What every node incarnation handled outlives its pod in a host
	// directory (the test runs on the cluster's only node).
	record, err := os.MkdirTemp("/var/tmp", "skycall-rolling-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(record) })
	if err := os.Chmod(record, 0o777); err != nil { // the pods run as 65532
		t.Fatal(err)
	}

	// The operator, binding the sender role in this namespace. The journey
	// may have installed and uninstalled it before: install again.
	j.kubectl(t, "create", "namespace", rolling)
	j.helm(t, "upgrade", "--install", release, "charts/skycall", "-n", system, "--create-namespace",
		"--set", "image.repository="+cluster.ManagerImage, "--set", "image.tag="+cluster.ImageTag,
		"--set", "image.pullPolicy=Never", "--set", "sender.namespaces={"+rolling+"}", "--wait", "--timeout=3m")
	j.apply(t, fmt.Sprintf(cluster.RollingNodesManifest, rolling, record))
	j.apply(t, cluster.SenderManifestIn(rolling))
	eventually(t, 3*time.Minute, "ClusterNodeSet game 3/3 ready and the sender pod Ready", func() (bool, string) {
		ready := j.get(t, rolling, "clusternodeset/game", `{.status.ready}`)
		sender := j.get(t, rolling, "pod/sender", `{.status.conditions[?(@.type=="Ready")].status}`)
		return ready == "3" && sender == "True", fmt.Sprintf("set ready %q, sender Ready=%q", ready, sender)
	})
	addr := net.JoinHostPort(j.podIP(t, rolling, "sender"), cluster.SenderPort)

	to := strings.Join(rollingNodes, ",")
	if _, err := cluster.SenderGet(ctx, addr, "/load/start?to="+to+"&callers=64&callevery=100ms&pushevery=20ms&max=5m"); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_, _ = cluster.SenderGet(ctx, addr, "/load/stop")
		}
	})
	eventually(t, time.Minute, "the sender connected to every node", func() (bool, string) {
		var states []string
		for _, n := range rollingNodes {
			states = append(states, cluster.SenderState(ctx, addr, n))
		}
		return !slices.ContainsFunc(states, func(s string) bool { return s != "ready" }), strings.Join(states, " ")
	})

	var rollouts []time.Duration
	for i := range 2 {
		began := time.Now()
		j.kubectl(t, "rollout", "restart", "statefulset/game", "-n", rolling)
		j.kubectl(t, "rollout", "status", "statefulset/game", "-n", rolling, "--timeout=4m")
		rollouts = append(rollouts, time.Since(began))
		t.Logf("rollout restart %d of 3 nodes done in %v", i+1, time.Since(began).Round(100*time.Millisecond))
	}
	// The last replacement is Ready; let the sender see it and deliver.
	eventually(t, time.Minute, "the sender connected to every new node", func() (bool, string) {
		var states []string
		for _, n := range rollingNodes {
			states = append(states, cluster.SenderState(ctx, addr, n))
		}
		return !slices.ContainsFunc(states, func(s string) bool { return s != "ready" }), strings.Join(states, " ")
	})

	out, err := cluster.SenderGet(ctx, addr, "/load/stop")
	stopped = true
	if err != nil {
		t.Fatal(err)
	}
	rep := parseLoadReport(t, out)
	t.Logf("the sender's report:\n%s", out)

	// A push is in the record once a node has handled it; wait until each
	// stream has all but what the sender counted dropped, or a deadline,
	// then count what is there.
	var got map[string]*streamRecord
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		got = readRecords(t, record)
		done := true
		for _, n := range rollingNodes {
			if got[n] == nil {
				got[n] = &streamRecord{seen: map[int]bool{}}
			}
			done = done && got[n].distinct() >= rep.pushes[n]-rep.dropped[n]
		}
		if done || time.Now().After(deadline) {
			break
		}
	}

	var maxDelay time.Duration
	for _, n := range rollingNodes {
		r := got[n]
		lost := r.lost(rep.pushes[n])
		t.Logf("%s: pushes sent %d, delivered %d, lost %d %v, reordered %d, duplicated %d, max delivery delay %v; dropped by the sender %d (%s); incarnations %d",
			n, rep.pushes[n], r.distinct(), len(lost), abbreviate(lost), r.reordered, r.duplicated,
			r.maxDelay.Round(time.Millisecond), rep.dropped[n], rep.droppedWhy[n], r.files)
		maxDelay = max(maxDelay, r.maxDelay)
		if r.reordered != 0 || r.duplicated != 0 {
			t.Errorf("%s: %d pushes reordered and %d duplicated, want none", n, r.reordered, r.duplicated)
		}
		// The goal is none lost; were one lost, the sender must have
		// counted it (nothing lost silently), and the two messages tell
		// which failure this is.
		if len(lost) > rep.dropped[n] {
			t.Errorf("%s: %d pushes lost %v but the sender counted only %d dropped: lost silently", n, len(lost), abbreviate(lost), rep.dropped[n])
		} else if len(lost) > 0 {
			t.Errorf("%s: %d pushes lost %v in a graceful rolling restart, want none (the sender counted them: %s)", n, len(lost), abbreviate(lost), rep.droppedWhy[n])
		}
		if r.files < 3 {
			t.Errorf("%s: pushes recorded by %d node processes, want 3 (the first and one per rollout)", n, r.files)
		}
	}
	// A rollout replaces the pods one at a time: a node's messages wait
	// for about one pod's replacement (preStop wait, Shutdown, the new pod
	// Ready and confirmed).
	var perPod []time.Duration
	for _, d := range rollouts {
		perPod = append(perPod, (d / time.Duration(len(rollingNodes))).Round(100*time.Millisecond))
	}
	t.Logf("calls ok %d, failed %v; pushes' max delivery delay %v, slowest call %s; rollouts took %v, about %v a pod",
		rep.callsOK, rep.callsFailed, maxDelay.Round(time.Millisecond), rep.maxCall, rollouts, perPod)
	if rep.callsOK == 0 {
		t.Errorf("no call succeeded")
	}
	for kind, n := range rep.callsFailed {
		t.Errorf("%d calls failed with %s, want none", n, kind)
	}
}

// loadReport is the sender's /load/stop answer.
type loadReport struct {
	callsOK     int
	callsFailed map[string]int
	maxCall     string
	pushes      map[string]int    // sent, per node
	dropped     map[string]int    // skycall_sender_dropped_total, all reasons, per node
	droppedWhy  map[string]string // per node: "reason n, ..."
}

func parseLoadReport(t *testing.T, out string) loadReport {
	t.Helper()
	r := loadReport{callsFailed: map[string]int{}, pushes: map[string]int{}, dropped: map[string]int{}, droppedWhy: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		n, _ := strconv.Atoi(f[len(f)-1])
		switch {
		case len(f) == 3 && f[0] == "calls" && f[1] == "ok":
			r.callsOK = n
		case len(f) == 4 && f[0] == "calls" && f[1] == "failed":
			r.callsFailed[f[2]] = n
		case len(f) == 4 && f[0] == "call" && f[1] == "max":
			r.maxCall = f[3]
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

// streamRecord is what the incarnations of one node recorded of its push
// stream, in the order they handled it.
type streamRecord struct {
	seqs       []int
	seen       map[int]bool
	reordered  int // pushes handled after one issued later
	duplicated int
	maxDelay   time.Duration
	files      int // node processes
}

func (r *streamRecord) distinct() int { return len(r.seen) }

// lost lists the sequence numbers 1..sent no incarnation recorded.
func (r *streamRecord) lost(sent int) []int {
	var lost []int
	for i := 1; i <= sent; i++ {
		if !r.seen[i] {
			lost = append(lost, i)
		}
	}
	return lost
}

// readRecords reads the push records (see skycall-demo's recorder) of every
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
		for _, line := range strings.Split(string(b), "\n") {
			var node string
			var seq int
			var sent, recv int64
			if line == "" {
				continue
			}
			// A line being written as we read is incomplete: skip it.
			if n, _ := fmt.Sscanf(line, "push %s %d %d %d", &node, &seq, &sent, &recv); n != 4 {
				continue
			}
			r := got[node]
			if r == nil {
				r = &streamRecord{seen: map[int]bool{}}
				got[node] = r
			}
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
		base := filepath.Base(f)
		if node := base[:strings.LastIndex(base, "-")]; got[node] != nil {
			got[node].files++
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
