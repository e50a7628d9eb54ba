package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/test/cluster"
)

// TestForceDeleteAndSIGKILLUnderLoad: under the rolling test's load, one
// node pod is force-deleted (`kubectl delete pod --grace-period=0 --force`)
// and another node's process is killed with SIGKILL from the host; the
// third is left alone. A force delete skips preStop, but the kubelet still
// stops the container with SIGTERM, so the node's Server.Shutdown runs; a
// SIGKILL skips Shutdown. For both: every call ends, answered or with a
// typed error, within the sender's call timeout; no push is lost without
// the sender counting it dropped; the replacement gets what was queued
// while there was none. The figures of each (t.Logf) are those
// docs/rolling-restarts.md quotes.
func TestForceDeleteAndSIGKILLUnderLoad(t *testing.T) {
	r := startLoad(t, "kill")
	const control, forced, killed = "game-0", "game-1", "game-2"

	oldUID := r.j.get(t, r.ns, "pod/"+forced, `{.metadata.uid}`)
	deleted := time.Now()
	r.j.kubectl(t, "delete", "pod", forced, "-n", r.ns, "--grace-period=0", "--force")
	eventually(t, 2*time.Minute, forced+" replaced by a new pod, Ready", func() (bool, string) {
		uid := r.j.get(t, r.ns, "pod/"+forced, `{.metadata.uid}`)
		ready := r.j.get(t, r.ns, "pod/"+forced, `{.status.conditions[?(@.type=="Ready")].status}`)
		return uid != "" && uid != oldUID && ready == "True", fmt.Sprintf("uid %q Ready=%q", uid, ready)
	})
	r.waitReplacementHandles(t, forced)

	container := r.j.get(t, r.ns, "pod/"+killed, `{.status.containerStatuses[0].containerID}`)
	procs, err := cluster.KillContainer(container)
	killedAt := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILLed the processes of %s's container: %v", killed, procs)
	r.waitReplacementHandles(t, killed)
	r.waitConnected(t, "the sender connected to every node again")

	rep := r.stop(t)
	got := r.records(t, rep)
	lost := map[string][]int{}
	for _, n := range loadNodes {
		lost[n] = checkStream(t, n, got[n], rep)
	}

	// No call hung: the load's stop waited for every call to end, and none
	// took longer than the call timeout allows (d to 1.1·d).
	if rep.callTimeout == 0 {
		t.Fatal("the sender's report has no call timeout")
	}
	if slowest := max(rep.maxCall, rep.maxFailed); slowest > rep.callTimeout+rep.callTimeout/10 {
		t.Errorf("a call took %v, beyond the call timeout of %v", slowest, rep.callTimeout)
	}
	for k, n := range rep.callsFailed {
		if node, kind, _ := strings.Cut(k, " "); kind == "other" || node == control {
			t.Errorf("%d calls to %s failed with %s: want none to %s, and every failure a typed error", n, node, kind, control)
		}
	}
	if len(lost[control]) > 0 {
		t.Errorf("%s, left alone, lost %d pushes", control, len(lost[control]))
	}

	// The force-deleted pod's process got SIGTERM and finished Shutdown.
	old, repl := oldAndReplacement(t, forced, got[forced], deleted)
	sigterm, gotTerm := old.events["sigterm"]
	shutdown, gotShutdown := old.events["shutdown"]
	if !gotTerm || !gotShutdown {
		t.Errorf("%s's process, force-deleted: events %v, want sigterm then shutdown (Server.Shutdown finished)", forced, old.events)
	}
	since := func(t time.Time) time.Duration { return t.Sub(deleted).Round(time.Millisecond) }
	t.Logf("force delete of %s, times from the delete: the old process's last push handled %v, SIGTERM %v (its preStop sleeps 5 s), Shutdown done %v; "+
		"the replacement started %v, first push handled %v; calls failed %v; pushes lost %d, counted dropped %d (%s); max delivery delay %v",
		forced, since(old.lastHandled), since(sigterm), since(shutdown), since(repl.started), since(repl.firstHandled),
		rep.failedTo(forced), len(lost[forced]), rep.dropped[forced], rep.droppedWhy[forced], got[forced].maxDelay.Round(time.Millisecond))
	checkReplacement(t, forced, old, repl, lost[forced])

	// The SIGKILLed process had no SIGTERM and no Shutdown; the kubelet
	// restarted the container.
	old, repl = oldAndReplacement(t, killed, got[killed], killedAt)
	if len(old.events) != 0 {
		t.Errorf("%s's process, SIGKILLed: events %v, want none", killed, old.events)
	}
	since = func(t time.Time) time.Duration { return t.Sub(killedAt).Round(time.Millisecond) }
	t.Logf("SIGKILL of %s, times from the kill: the old process's last push handled %v; the restarted one started %v, first push handled %v; "+
		"calls failed %v; pushes lost %d, counted dropped %d (%s); max delivery delay %v",
		killed, since(old.lastHandled), since(repl.started), since(repl.firstHandled), rep.failedTo(killed), len(lost[killed]),
		rep.dropped[killed], rep.droppedWhy[killed], got[killed].maxDelay.Round(time.Millisecond))
	checkReplacement(t, killed, old, repl, lost[killed])
	t.Logf("calls ok %d, failed %v; slowest call answered %v, slowest failed %v, call timeout %v",
		rep.callsOK, rep.callsFailed, rep.maxCall, rep.maxFailed, rep.callTimeout)
}

// waitReplacementHandles waits until a second process of node, the one
// that replaced the first, has handled a push.
func (r *loadRun) waitReplacementHandles(t *testing.T, node string) {
	t.Helper()
	eventually(t, 2*time.Minute, "a second process of "+node+" handling pushes", func() (bool, string) {
		s := readRecords(t, r.record)[node]
		if s == nil {
			return false, "no record"
		}
		last := s.procs[len(s.procs)-1]
		return len(s.procs) >= 2 && last.pushes > 0, fmt.Sprintf("%d processes, the last handled %d pushes", len(s.procs), last.pushes)
	})
}

// oldAndReplacement are node's first process and the one that replaced it
// after the fault at at.
func oldAndReplacement(t *testing.T, node string, s *streamRecord, at time.Time) (old, repl *processRecord) {
	t.Helper()
	if len(s.procs) != 2 {
		t.Fatalf("%s: %d processes recorded, want 2 (the first and its replacement)", node, len(s.procs))
	}
	if !s.procs[1].started.After(at) {
		t.Fatalf("%s: the second process started at %v, before the fault at %v", node, s.procs[1].started, at)
	}
	return s.procs[0], s.procs[1]
}

// checkReplacement fails the test unless node's replacement got the pushes
// queued while no process could take them: when the old process stopped
// handling pushes well before the replacement started (by more than three
// push intervals), the replacement's first push was issued before it
// started; and none issued from then on was lost. A force delete may start
// the replacement while the old process still runs: then there was no gap
// and nothing to queue.
func checkReplacement(t *testing.T, node string, old, repl *processRecord, lost []int) {
	t.Helper()
	if len(lost) > 0 && lost[len(lost)-1] > repl.first {
		t.Errorf("%s: push %d lost, issued after %d, the first the replacement handled", node, lost[len(lost)-1], repl.first)
	}
	if repl.pushes == 0 {
		t.Errorf("%s: the replacement handled no push", node)
		return
	}
	gap := repl.started.Sub(old.lastHandled)
	interval := time.Duration(0)
	if old.pushes > 1 {
		interval = old.lastHandled.Sub(old.firstHandled) / time.Duration(old.pushes-1)
	}
	if gap <= 3*interval {
		t.Logf("%s: the replacement started %v after the old process's last push (push interval %v): no gap to queue through",
			node, gap.Round(time.Millisecond), interval.Round(time.Millisecond))
		return
	}
	if !repl.firstSent.Before(repl.started) {
		t.Errorf("%s: the replacement's first push (of %d) was issued %v after it started, %v after the old process's last; want one queued before it",
			node, repl.pushes, repl.firstSent.Sub(repl.started), gap.Round(time.Millisecond))
	}
}
