package kube

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
)

// The same ClusterNodes mean the same to an in-pod Go sender (the
// Kubernetes registry) and to a skynet node or File registry (the registry
// ConfigMap the operator writes with ClusterNodeEntries, registry.FormatClusterConfig
// and registry.FormatNodesJSON, as the operator's registry controller does), including
// while status lags spec. The objects live in a real API server; no
// operator runs, so each status is exactly what the case writes.
func TestClusterNodeMeansTheSameToEverySender(t *testing.T) {
	cp, c := controlPlane(t)
	ctx := context.Background()
	type setup func(t *testing.T, ns string)
	node := func(name, nodeName string, down bool) setup {
		return func(t *testing.T, ns string) {
			cn := &skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: skycallv1.ClusterNodeSpec{NodeName: nodeName, Address: "10.0.0.7:2528", Down: down}}
			if err := c.Create(ctx, cn); err != nil {
				t.Fatal(err)
			}
		}
	}
	status := func(name string, ready bool, reason, addr string) setup {
		return func(t *testing.T, ns string) {
			cn := &skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			setStatus(t, c, cn, ready, reason, addr)
		}
	}
	statusNodeName := func(name, nodeName string) setup {
		return func(t *testing.T, ns string) {
			var cn skycallv1.ClusterNode
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cn); err != nil {
				t.Fatal(err)
			}
			cn.Status.NodeName = nodeName
			if err := c.Status().Update(ctx, &cn); err != nil {
				t.Fatal(err)
			}
		}
	}
	// endpoints sets status.endpoints as the operator resolves a pod
	// (drained or not) without touching the Ready condition.
	endpoints := func(name string, eps ...skycallv1.Endpoint) setup {
		return func(t *testing.T, ns string) {
			var cn skycallv1.ClusterNode
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cn); err != nil {
				t.Fatal(err)
			}
			cn.Status.Endpoints = eps
			if err := c.Status().Update(ctx, &cn); err != nil {
				t.Fatal(err)
			}
		}
	}
	setDown := func(name string, down bool) setup {
		return func(t *testing.T, ns string) {
			var cn skycallv1.ClusterNode
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cn); err != nil {
				t.Fatal(err)
			}
			cn.Spec.Down = down
			if err := c.Update(ctx, &cn); err != nil {
				t.Fatal(err)
			}
		}
	}
	const addr = "10.0.0.7:2528"
	podA := skycallv1.Endpoint{Address: addr, PodName: "db-0", PodUID: "uid-a"}
	podAGoing := skycallv1.Endpoint{Address: addr, PodName: "db-0", PodUID: "uid-a", Terminating: true}
	podB := skycallv1.Endpoint{Address: addr, PodName: "db-0", PodUID: "uid-b"} // the replacement, at the same IP
	for _, tc := range []struct {
		name        string
		steps       []setup
		node        string
		want        registry.State
		incarnation string // what the Kubernetes registry says
	}{
		{"ready", []setup{node("db", "", false), status("db", true, skycallv1.ReasonResolved, addr)}, "db", registry.Ready, ""},
		{"ready at a pod: its UID is the incarnation", []setup{node("db", "", false),
			status("db", true, skycallv1.ReasonResolved, addr), endpoints("db", podA)}, "db", registry.Ready, "uid-a"},
		{"draining", []setup{node("db", "", false), status("db", false, skycallv1.ReasonDraining, ""),
			endpoints("db", podAGoing)}, "db", registry.Draining, "uid-a"},
		{"draining said for an older spec", []setup{node("db", "", false), status("db", false, skycallv1.ReasonDraining, ""),
			endpoints("db", podAGoing), setDown("db", true), setDown("db", false)}, "db", registry.NotReady, ""},
		{"a replacement at the old pod's IP is another incarnation", []setup{node("db", "", false),
			status("db", true, skycallv1.ReasonResolved, addr), endpoints("db", podB)}, "db", registry.Ready, "uid-b"},
		{"no status yet", []setup{node("db", "", false)}, "db", registry.NotReady, ""},
		{"resolving failed", []setup{node("db", "", false), status("db", false, skycallv1.ReasonServiceNotFound, "")}, "db", registry.NotReady, ""},
		{"down", []setup{node("db", "", true), status("db", false, skycallv1.ReasonAdministrativelyDown, "")}, "db", registry.Down, ""},
		{"spec.down set while status still says registry.Ready",
			[]setup{node("db", "", false), status("db", true, skycallv1.ReasonResolved, addr), setDown("db", true)}, "db", registry.Down, ""},
		{"spec.down cleared while status still says AdministrativelyDown",
			[]setup{node("db", "", true), status("db", false, skycallv1.ReasonAdministrativelyDown, ""), setDown("db", false)}, "db", registry.NotReady, ""},
		{"two ClusterNodes claim one node name, before the operator marks them",
			[]setup{node("db", "", false), status("db", true, skycallv1.ReasonResolved, addr), node("db-twin", "db", false)}, "db", registry.NotReady, ""},
		{"two ClusterNodes claim one node name, both marked",
			[]setup{node("db", "", false), node("db-twin", "db", false),
				status("db", false, skycallv1.ReasonNameConflict, ""), status("db-twin", false, skycallv1.ReasonNameConflict, "")}, "db", registry.NotReady, ""},
		{"conflict over, status not updated yet",
			[]setup{node("db", "", false), status("db", false, skycallv1.ReasonNameConflict, "")}, "db", registry.NotReady, ""},
		{"no ClusterNode", []setup{node("db", "", false)}, "other", registry.Absent, ""},
		// Statuses no operator of ours writes: checked where they are read.
		{"status.nodeName reserved", []setup{node("db", "", false), status("db", true, skycallv1.ReasonResolved, addr),
			statusNodeName("db", "__nowaiting")}, "__nowaiting", registry.NotReady, ""},
		{"status.address injects a line", []setup{node("db", "", false),
			status("db", true, skycallv1.ReasonResolved, "h\"\n__nowaiting = true --:1")}, "db", registry.NotReady, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t, c)
			for _, step := range tc.steps {
				step(t, ns)
			}
			var list skycallv1.ClusterNodeList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}

			// In-pod Go sender: the Kubernetes registry, once its cache
			// holds exactly these versions of the objects.
			reg, err := NewRegistry(cp.Config, ns)
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			_, _ = reg.Lookup(tc.node)
			testkit.Eventually(t, "the registry's cache holds the objects as listed", func() bool {
				if e, err := reg.Lookup(tc.node); err != nil || e.State == registry.Unknown {
					return false
				}
				for i := range list.Items {
					o, ok, _ := reg.inf.GetStore().Get(&list.Items[i])
					if !ok || o.(*skycallv1.ClusterNode).ResourceVersion != list.Items[i].ResourceVersion {
						return false
					}
				}
				return len(reg.inf.GetStore().ListKeys()) == len(list.Items)
			})
			inPod, err := reg.Lookup(tc.node)
			if err != nil {
				t.Fatal(err)
			}

			// The operator's registry ConfigMap, read back as skynet and
			// programs read it.
			entries := ClusterNodeEntries(list.Items)
			lua, _ := registry.FormatClusterConfig("test", entries)
			cfg, err := registry.ParseClusterConfig([]byte(lua))
			if err != nil {
				t.Fatalf("clustername.lua does not parse: %v\n%s", err, lua)
			}
			fromLua, ok := cfg.Nodes[tc.node]
			if !ok {
				fromLua = registry.Entry{Node: tc.node, State: registry.Absent}
			}
			raw, err := registry.FormatNodesJSON(1, entries)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := registry.ParseNodesJSON([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			fromJSON := doc.Lookup(tc.node)

			// skynet's file has no "not ready" nor "draining": such a node
			// has no line.
			wantLua := tc.want
			if wantLua == registry.NotReady || wantLua == registry.Draining {
				wantLua = registry.Absent
			}
			wantAddr := ""
			if tc.want == registry.Ready {
				wantAddr = addr
			}
			describe := func(e registry.Entry) string {
				return fmt.Sprintf("%v %q incarnation %q (%s)", e.State, e.Address, e.Incarnation, e.Reason)
			}
			// The in-pod registry also says which address is draining.
			wantInPodAddr := wantAddr
			if tc.want == registry.Draining {
				wantInPodAddr = addr
			}
			if inPod.State != tc.want || inPod.Address != wantInPodAddr || inPod.Incarnation != tc.incarnation {
				t.Errorf("Kubernetes registry: %s, want %v %q incarnation %q", describe(inPod), tc.want, wantInPodAddr, tc.incarnation)
			}
			if fromJSON.State != tc.want || fromJSON.Address != wantAddr {
				t.Errorf("nodes.json: %s, want %v %q\n%s", describe(fromJSON), tc.want, wantAddr, raw)
			}
			if fromLua.State != wantLua || fromLua.Address != wantAddr || cfg.NoWait {
				t.Errorf("clustername.lua: %s (nowaiting %v), want %v %q\n%s", describe(fromLua), cfg.NoWait, wantLua, wantAddr, lua)
			}
			if (tc.want == registry.NotReady || tc.want == registry.Draining) && inPod.Reason == "" {
				t.Errorf("Kubernetes registry says %v without a reason", tc.want)
			}
			if cond := meta.FindStatusCondition(list.Items[0].Status.Conditions, skycallv1.ConditionReady); cond != nil {
				t.Logf("%s: Ready=%s %s; senders: %s", list.Items[0].Name, cond.Status, cond.Reason, describe(inPod))
			}
		})
	}
}
