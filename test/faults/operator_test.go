package faults

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
)

// apiOutage is how long the API server stays down in these tests: longer
// than client-go's backoff needs to grow past 10 s, and longer than the
// renew deadline the leader election tests use.
const apiOutage = 20 * time.Second

// convergeBound is the documented goal (docs/reliability.md): a change made
// once the API server is ready (/readyz) reaches ClusterNode status within
// 5 s. Measured: 1.5 to 1.9 s. The tests fail at twice the goal, a margin
// for a loaded machine that still catches client-go's backoff (25 to 50 s
// before the fix).
const (
	convergeBound = 5 * time.Second
	convergeFail  = 2 * convergeBound
)

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "faults-"}}
	eventually(t, time.Minute, "create a namespace", func() error { return k8s.Create(context.Background(), ns) })
	return ns.Name
}

// createNode creates a ClusterNode with a fixed address and waits until the
// operator has made it Ready with that address.
func createNode(t *testing.T, ns, name, addr string) {
	t.Helper()
	cn := &skycallv1.ClusterNode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       skycallv1.ClusterNodeSpec{Address: addr},
	}
	if err := k8s.Create(context.Background(), cn); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the operator makes the new ClusterNode Ready", func() error { return hasAddress(ns, name, addr) })
}

// hasAddress says why the ClusterNode is not Ready with addr, if it is not.
func hasAddress(ns, name, addr string) error {
	var cn skycallv1.ClusterNode
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cn); err != nil {
		return err
	}
	c := meta.FindStatusCondition(cn.Status.Conditions, skycallv1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || cn.Status.Address != addr || c.ObservedGeneration != cn.Generation {
		return fmt.Errorf("status address %q, Ready %v, want Ready with %q for generation %d", cn.Status.Address, c, addr, cn.Generation)
	}
	return nil
}

// changeAddress sets spec.address, retrying while the API server is still
// settling, and returns when the change was accepted.
func changeAddress(t *testing.T, ns, name, addr string) {
	t.Helper()
	eventually(t, time.Minute, "change spec.address", func() error {
		var cn skycallv1.ClusterNode
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cn); err != nil {
			return err
		}
		cn.Spec.Address = addr
		return k8s.Update(context.Background(), &cn)
	})
}

// converged waits (up to a minute, to report the figure when it is over
// the bound) until the ClusterNode's status shows addr and returns how long
// that took since from.
func converged(t *testing.T, ns, name, addr string, from time.Time) time.Duration {
	t.Helper()
	eventually(t, time.Minute, "the change reaches ClusterNode status", func() error { return hasAddress(ns, name, addr) })
	return time.Since(from)
}

// Before the operator's informers waited for the API server themselves
// (internal/apiwait), client-go's backoff, grown during the outage, left
// them asleep 25 to 49 s after the API server was back.
func TestStatusFollowsAChangeWithin5sOfAPIServerRestart(t *testing.T) {
	startManager(t, "manager")
	ns := newNamespace(t)
	createNode(t, ns, "db", "10.0.0.1:2526")

	ready := restartAPIServer(t, apiOutage)
	changeAddress(t, ns, "db", "10.0.0.2:2526")
	changed := time.Since(ready)
	took := converged(t, ns, "db", "10.0.0.2:2526", ready)
	t.Logf("API server ready -> change in ClusterNode status: %v (change accepted after %v; outage %v, bound %v)",
		took.Round(10*time.Millisecond), changed.Round(10*time.Millisecond), apiOutage, convergeBound)
	if took > convergeFail {
		t.Errorf("a change made once the API server was ready reached ClusterNode status after %v, documented goal %v", took, convergeBound)
	}
}

var (
	acquired = regexp.MustCompile(`(?i)successfully acquired lease`)
	standby  = regexp.MustCompile(`(?i)attempting to acquire leader lease`)
	lost     = regexp.MustCompile(`(?i)leader election lost`)
)

// TestLeaderFailover runs two operator replicas with leader election and
// short lease flags, and measures how soon a change is reconciled after the
// leader stops cleanly, after the API server restarts for longer than the
// renew deadline, and after the leader crashes.
func TestLeaderFailover(t *testing.T) {
	const (
		lease   = 8 * time.Second
		renew   = 5 * time.Second
		retry   = time.Second
		handoff = 5 * time.Second // documented: a clean stop hands over within about one retry period
	)
	flags := []string{"--leader-elect", "--leader-election-namespace=default",
		"--leader-elect-lease-duration=" + lease.String(), "--leader-elect-renew-deadline=" + renew.String(),
		"--leader-elect-retry-period=" + retry.String()}
	replicas := []*managerProc{startManager(t, "mgr-1", flags...), startManager(t, "mgr-2", flags...)}
	leader := func(t *testing.T) *managerProc {
		t.Helper()
		var l *managerProc
		eventually(t, time.Minute, "one replica leads", func() error {
			for _, r := range replicas {
				if !r.exited() && r.logged(acquired) {
					l = r
					return nil
				}
			}
			return fmt.Errorf("no live replica has acquired the lease")
		})
		return l
	}
	// replace replaces a stopped replica by a fresh follower that lives
	// until the whole test ends.
	parent := t
	replace := func(old *managerProc, name string) {
		for i, r := range replicas {
			if r == old {
				r = startManager(parent, name, flags...)
				replicas[i] = r
				eventually(parent, time.Minute, name+" stands by", func() error {
					if !r.logged(standby) {
						return fmt.Errorf("%s has not tried to acquire the lease yet", name)
					}
					return nil
				})
			}
		}
	}
	ns := newNamespace(t)
	createNode(t, ns, "db", "10.0.1.0:2526")

	t.Run("a leader stopped cleanly hands over at once", func(t *testing.T) {
		old := leader(t)
		stopped := time.Now()
		old.Stop()
		changeAddress(t, ns, "db", "10.0.1.1:2526")
		took := converged(t, ns, "db", "10.0.1.1:2526", stopped)
		t.Logf("leader stopped -> change in status: %v (lease %v, retry %v)", took.Round(10*time.Millisecond), lease, retry)
		if took > handoff {
			t.Errorf("failover after a clean stop took %v, documented bound %v (the lease was not released?)", took, handoff)
		}
		replace(old, "mgr-3")
	})

	t.Run("the API server restarts for longer than the renew deadline", func(t *testing.T) {
		old := leader(t)
		ready := restartAPIServer(t, apiOutage)
		changeAddress(t, ns, "db", "10.0.1.2:2526")
		took := converged(t, ns, "db", "10.0.1.2:2526", ready)
		t.Logf("API server ready -> change in status, with leader election: %v (outage %v > renew deadline %v)",
			took.Round(10*time.Millisecond), apiOutage, renew)
		if bound := lease + convergeFail; took > bound {
			t.Errorf("with leader election, a change made once the API server was ready took %v, documented bound %v", took, lease+convergeBound)
		}
		// The leader could not renew for longer than its deadline: it must
		// have stepped down and exited (the kubelet restarts it), never
		// reconciling on a lease it no longer holds.
		eventually(t, time.Minute, "the old leader exits", func() error {
			if old.exited() && old.logged(lost) {
				return nil
			}
			return fmt.Errorf("the old leader is still running (or exited without saying the election was lost)")
		})
		replace(old, "mgr-4")
	})

	t.Run("a crashed leader is replaced within the lease duration", func(t *testing.T) {
		old := leader(t)
		killed := time.Now()
		if err := old.Kill(); err != nil {
			t.Fatal(err)
		}
		changeAddress(t, ns, "db", "10.0.1.3:2526")
		took := converged(t, ns, "db", "10.0.1.3:2526", killed)
		t.Logf("leader killed -> change in status: %v (lease %v)", took.Round(10*time.Millisecond), lease)
		if bound := lease + convergeFail; took > bound {
			t.Errorf("failover after a crash took %v, documented bound lease duration + %v = %v", took, convergeBound, lease+convergeBound)
		}
	})
}
