package cluster_test

import (
	"strings"
	"testing"
	"time"
)

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
	r := startLoad(t, "roll")

	var rollouts []time.Duration
	for i := range 2 {
		began := time.Now()
		r.j.kubectl(t, "rollout", "restart", "statefulset/game", "-n", r.ns)
		r.j.kubectl(t, "rollout", "status", "statefulset/game", "-n", r.ns, "--timeout=4m")
		rollouts = append(rollouts, time.Since(began))
		t.Logf("rollout restart %d of 3 nodes done in %v", i+1, time.Since(began).Round(100*time.Millisecond))
	}
	// The last replacement is Ready; let the sender see it and deliver.
	r.waitConnected(t, "the sender connected to every new node")

	rep := r.stop(t)
	got := r.records(t, rep)
	var maxDelay time.Duration
	for _, n := range loadNodes {
		maxDelay = max(maxDelay, got[n].maxDelay)
		// The goal is none lost; were one lost, checkStream says whether
		// the sender counted it, and this which failure it is.
		if lost := checkStream(t, n, got[n], rep); len(lost) > 0 && len(lost) <= rep.dropped[n] {
			t.Errorf("%s: %d pushes lost %v in a graceful rolling restart, want none (the sender counted them: %s)", n, len(lost), abbreviate(lost), rep.droppedWhy[n])
		}
		// Every push arrived, and the sender must know it: a drained
		// connection proves its pushes before it closes, so a clean
		// rollout counts none dropped and no alert fires.
		if rep.dropped[n] != 0 {
			t.Errorf("%s: the sender counted %d pushes dropped (%s) in a clean rolling restart, want 0", n, rep.dropped[n], rep.droppedWhy[n])
		}
		if p := len(got[n].procs); p < 3 {
			t.Errorf("%s: %d node processes recorded, want 3 (the first and one per rollout)", n, p)
		}
	}
	// A rollout replaces the pods one at a time: a node's messages wait
	// for about one pod's replacement (preStop wait, Shutdown, the new pod
	// Ready and confirmed).
	var perPod []time.Duration
	for _, d := range rollouts {
		perPod = append(perPod, (d / time.Duration(len(loadNodes))).Round(100*time.Millisecond))
	}
	t.Logf("calls ok %d, failed %v; pushes' max delivery delay %v, slowest call %v; rollouts took %v, about %v a pod",
		rep.callsOK, rep.callsFailed, maxDelay.Round(time.Millisecond), rep.maxCall, rollouts, perPod)
	if rep.callsOK == 0 {
		t.Errorf("no call succeeded")
	}
	for k, n := range rep.callsFailed {
		node, kind, _ := strings.Cut(k, " ")
		t.Errorf("%d calls to %s failed with %s, want none", n, node, kind)
	}
}
