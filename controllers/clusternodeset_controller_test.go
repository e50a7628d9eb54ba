package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/controllers"
)

// pod is one endpoint of a set's Service, as the EndpointSlice controller
// writes it: ready, or terminating (serving while it still answers).
type pod struct {
	name, ip, uid string
	ready         bool
	terminating   bool
	serving       bool
	// published: a terminating endpoint still ready, as for a Service
	// with publishNotReadyAddresses.
	published bool
}

func podSlice(ns, svc, sliceName string, pods ...pod) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: sliceName, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("cluster"), Port: ptr.To(int32(2526)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	setPods(es, pods...)
	return es
}

func setPods(es *discoveryv1.EndpointSlice, pods ...pod) {
	es.Endpoints = nil
	for _, p := range pods {
		uid := p.uid
		if uid == "" {
			uid = "uid-" + p.name
		}
		c := discoveryv1.EndpointConditions{Ready: ptr.To(p.ready), Serving: ptr.To(p.ready)}
		if p.terminating {
			c = discoveryv1.EndpointConditions{Ready: ptr.To(p.published), Serving: ptr.To(p.serving), Terminating: ptr.To(true)}
		}
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.ip},
			Conditions: c,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: es.Namespace, Name: p.name, UID: types.UID(uid)},
		})
	}
}

// updatePods replaces the endpoints of a slice, retrying on conflicts.
func updatePods(t *testing.T, ns, sliceName string, pods ...pod) {
	t.Helper()
	eventually(t, wait, func() error {
		var es discoveryv1.EndpointSlice
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: sliceName}, &es); err != nil {
			return err
		}
		setPods(&es, pods...)
		return k8s.Update(context.Background(), &es)
	})
}

func nodeSet(ns, name, svc, template string, removeAfter int32) *skycallv1.ClusterNodeSet {
	return &skycallv1.ClusterNodeSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: skycallv1.ClusterNodeSetSpec{
			Service:            skycallv1.SetServiceReference{Name: svc, Port: intstr.FromString("cluster")},
			NodeName:           template,
			RemoveAfterSeconds: ptr.To(removeAfter),
		},
	}
}

// expectSet waits until the set's status has these counts and Ready reason.
func expectSet(t *testing.T, ns, name string, desired, nodes, ready, draining int32, reason string) *skycallv1.ClusterNodeSet {
	t.Helper()
	var set skycallv1.ClusterNodeSet
	eventually(t, wait, func() error {
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &set); err != nil {
			return err
		}
		st := set.Status
		c := meta.FindStatusCondition(st.Conditions, skycallv1.ConditionReady)
		if c == nil {
			return fmt.Errorf("no Ready condition yet")
		}
		if st.Desired != desired || st.Nodes != nodes || st.Ready != ready || st.Draining != draining || c.Reason != reason {
			return fmt.Errorf("desired/nodes/ready/draining %d/%d/%d/%d reason %s (%s), want %d/%d/%d/%d %s",
				st.Desired, st.Nodes, st.Ready, st.Draining, c.Reason, c.Message, desired, nodes, ready, draining, reason)
		}
		if st.ObservedGeneration != set.Generation || c.ObservedGeneration != set.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", c.ObservedGeneration, set.Generation)
		}
		return nil
	})
	return &set
}

// setNodes lists the ClusterNodes in ns, by name.
func setNodes(t *testing.T, ns string) map[string]skycallv1.ClusterNode {
	t.Helper()
	var list skycallv1.ClusterNodeList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]skycallv1.ClusterNode{}
	for _, cn := range list.Items {
		out[cn.Name] = cn
	}
	return out
}

// expectNodeNames waits until exactly these ClusterNodes exist.
// waitNodeGone waits, within timeout, until the set's node name is gone,
// and returns how long that took.
func waitNodeGone(t *testing.T, ns, name string, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	eventually(t, timeout, func() error {
		if _, ok := setNodes(t, ns)[name]; ok {
			return fmt.Errorf("%s still has its node", name)
		}
		return nil
	})
	return time.Since(began).Round(time.Millisecond)
}

func expectNodeNames(t *testing.T, ns string, want ...string) map[string]skycallv1.ClusterNode {
	t.Helper()
	var got map[string]skycallv1.ClusterNode
	eventually(t, wait, func() error {
		got = setNodes(t, ns)
		var names []string
		for n := range got {
			names = append(names, n)
		}
		slices.Sort(names)
		if strings.Join(names, ",") != strings.Join(want, ",") {
			return fmt.Errorf("ClusterNodes %v, want %v", names, want)
		}
		return nil
	})
	return got
}

func TestSetMakesOneOwnedNodePerPodReadyOrNot(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	create(t, podSlice(ns, "game", "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "game-1", ip: "10.0.0.11", ready: false}))
	create(t, podSlice(ns, "game", "game-b", pod{name: "game-2", ip: "10.0.0.12", ready: true}))
	set := nodeSet(ns, "game", "game", "game_{ordinal}", 0)
	create(t, set)

	set = expectSet(t, ns, "game", 3, 3, 2, 0, skycallv1.ReasonNodesNotReady)
	nodes := expectNodeNames(t, ns, "game-0", "game-1", "game-2")
	for i, name := range []string{"game-0", "game-1", "game-2"} {
		cn := nodes[name]
		ref := metav1.GetControllerOf(&cn)
		if ref == nil || ref.UID != set.UID || ref.Kind != "ClusterNodeSet" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("%s: controller ownerReference %+v, want the set %s (so that deleting the set deletes its nodes)", name, ref, set.UID)
		}
		if cn.Labels[skycallv1.LabelClusterNodeSet] != "game" {
			t.Errorf("%s: labels %v, want %s=game", name, cn.Labels, skycallv1.LabelClusterNodeSet)
		}
		want := fmt.Sprintf("game_%d", i)
		if cn.Spec.NodeName != want || cn.Spec.Service == nil || cn.Spec.Service.Pod != name || cn.Spec.Service.Name != "game" {
			t.Errorf("%s: spec %+v, want nodeName %s following pod %s of Service game", name, cn.Spec, want, name)
		}
	}
	expectReady(t, ns, "game-1", metav1.ConditionFalse, skycallv1.ReasonNoReadyEndpoints, "")
	expectRegistryLines(t, ns, `game_0 = "10.0.0.10:2526"`, `game_2 = "10.0.0.12:2526"`)

	// The pod becomes ready: the set is Ready.
	updatePods(t, ns, "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "game-1", ip: "10.0.0.11", ready: true})
	expectSet(t, ns, "game", 3, 3, 3, 0, skycallv1.ReasonAllNodesReady)
	expectRegistryLines(t, ns, `game_0 = "10.0.0.10:2526"`, `game_1 = "10.0.0.11:2526"`, `game_2 = "10.0.0.12:2526"`)
}

func TestSetScaleDownRemovesThePodsNode(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	create(t, podSlice(ns, "game", "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "game-1", ip: "10.0.0.11", ready: true}))
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 0))
	expectSet(t, ns, "game", 2, 2, 2, 0, skycallv1.ReasonAllNodesReady)

	updatePods(t, ns, "game-a", pod{name: "game-0", ip: "10.0.0.10", ready: true})
	expectNodeNames(t, ns, "game-0")
	expectSet(t, ns, "game", 1, 1, 1, 0, skycallv1.ReasonAllNodesReady)
	expectRegistryLines(t, ns, `game_0 = "10.0.0.10:2526"`)
}

func TestSetKeepsTheNodeOfAPodBeingReplaced(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	create(t, podSlice(ns, "game", "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "game-1", ip: "10.0.0.11", ready: true}))
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 3600))
	expectSet(t, ns, "game", 2, 2, 2, 0, skycallv1.ReasonAllNodesReady)
	uid := setNodes(t, ns)["game-1"].UID

	// The old game-1 is gone, the new one has no address yet: the node
	// stays (NotReady: senders wait for it), marked with when its pod left.
	updatePods(t, ns, "game-a", pod{name: "game-0", ip: "10.0.0.10", ready: true})
	expectReady(t, ns, "game-1", metav1.ConditionFalse, skycallv1.ReasonNoReadyEndpoints, "")
	eventually(t, wait, func() error {
		cn := setNodes(t, ns)["game-1"]
		if cn.UID != uid {
			return fmt.Errorf("game-1 was recreated (UID %s, was %s)", cn.UID, uid)
		}
		if cn.Annotations[skycallv1.AnnotationPodGoneSince] == "" {
			return fmt.Errorf("game-1 has no %s annotation: %v", skycallv1.AnnotationPodGoneSince, cn.Annotations)
		}
		return nil
	})
	expectSet(t, ns, "game", 1, 2, 1, 0, skycallv1.ReasonNodesNotReady)

	// The replacement comes up, same name, new UID, reused IP: the same
	// node object follows it, with the new incarnation.
	updatePods(t, ns, "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "game-1", ip: "10.0.0.11", uid: "uid-game-1-b", ready: true})
	cn := expectReady(t, ns, "game-1", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.0.0.11:2526")
	if cn.UID != uid || len(cn.Status.Endpoints) != 1 || cn.Status.Endpoints[0].PodUID != "uid-game-1-b" {
		t.Errorf("game-1: UID %s (was %s), endpoints %+v, want the same object with pod UID uid-game-1-b", cn.UID, uid, cn.Status.Endpoints)
	}
	eventually(t, wait, func() error {
		if a, ok := setNodes(t, ns)["game-1"].Annotations[skycallv1.AnnotationPodGoneSince]; ok {
			return fmt.Errorf("game-1 still marked as missing its pod since %s", a)
		}
		return nil
	})
	expectSet(t, ns, "game", 2, 2, 2, 0, skycallv1.ReasonAllNodesReady)
}

func TestSetLeavesAHandWrittenNodeAlone(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	create(t, podSlice(ns, "game", "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "game-1", ip: "10.0.0.11", ready: true}))
	mine := addressNode(ns, "game-1", "10.9.9.9:2526")
	mine.Spec.NodeName = "legacy"
	create(t, mine)
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 0))

	set := expectSet(t, ns, "game", 2, 1, 1, 0, skycallv1.ReasonNodeConflict)
	msg := meta.FindStatusCondition(set.Status.Conditions, skycallv1.ConditionReady).Message
	if !strings.Contains(msg, "game-1") || !strings.Contains(msg, "no controller") {
		t.Errorf("conflict message %q does not name game-1 and say it is not the set's", msg)
	}
	cn := setNodes(t, ns)["game-1"]
	if len(cn.OwnerReferences) != 0 || cn.Spec.Address != "10.9.9.9:2526" || cn.Spec.NodeName != "legacy" || cn.Spec.Service != nil {
		t.Errorf("the hand-written game-1 was touched: owners %v, spec %+v", cn.OwnerReferences, cn.Spec)
	}
	expectRegistryLines(t, ns, `game_0 = "10.0.0.10:2526"`, `legacy = "10.9.9.9:2526"`)

	// Deleting it lets the set take over.
	if err := k8s.Delete(context.Background(), &cn); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, "game", 2, 2, 2, 0, skycallv1.ReasonAllNodesReady)
	expectRegistryLines(t, ns, `game_0 = "10.0.0.10:2526"`, `game_1 = "10.0.0.11:2526"`)
}

func TestSetUpdatesItsNodesInPlace(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	create(t, podSlice(ns, "game", "game-a", pod{name: "game-0", ip: "10.0.0.10", ready: true}))
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 0))
	expectSet(t, ns, "game", 1, 1, 1, 0, skycallv1.ReasonAllNodesReady)
	uid := setNodes(t, ns)["game-0"].UID

	var set skycallv1.ClusterNodeSet
	eventually(t, wait, func() error {
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "game"}, &set); err != nil {
			return err
		}
		set.Spec.NodeName = "{pod}"
		set.Spec.Down = true
		return k8s.Update(context.Background(), &set)
	})
	expectSet(t, ns, "game", 1, 1, 0, 0, skycallv1.ReasonAdministrativelyDown)
	expectRegistryLines(t, ns, `_ENV["game-0"] = false`)
	cn := setNodes(t, ns)["game-0"]
	if cn.UID != uid || cn.Spec.NodeName != "game-0" || !cn.Spec.Down {
		t.Errorf("game-0: UID %s (was %s), spec %+v: want the same object renamed and down", cn.UID, uid, cn.Spec)
	}

	// A person editing the set's node by hand is put right.
	cn.Spec.Down = false
	if err := k8s.Update(context.Background(), &cn); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if cn := setNodes(t, ns)["game-0"]; !cn.Spec.Down {
			return fmt.Errorf("game-0 spec.down still false")
		}
		return nil
	})
}

func TestSetReportsPodsTheTemplateCannotName(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	create(t, podSlice(ns, "game", "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "canary", ip: "10.0.0.20", ready: true}))
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 0))
	set := expectSet(t, ns, "game", 2, 1, 1, 0, skycallv1.ReasonInvalidNodeName)
	if msg := meta.FindStatusCondition(set.Status.Conditions, skycallv1.ConditionReady).Message; !strings.Contains(msg, `"canary"`) || !strings.Contains(msg, "ordinal") {
		t.Errorf("message %q does not say that pod canary has no ordinal", msg)
	}
	expectNodeNames(t, ns, "game-0")
}

func TestSetWithoutItsServiceLeavesItsNodes(t *testing.T) {
	ns := newNamespace(t)
	svc := service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526})
	create(t, svc)
	create(t, podSlice(ns, "game", "game-a", pod{name: "game-0", ip: "10.0.0.10", ready: true}))
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 0))
	expectSet(t, ns, "game", 1, 1, 1, 0, skycallv1.ReasonAllNodesReady)
	if err := k8s.Delete(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, "game", 1, 1, 0, 0, skycallv1.ReasonServiceNotFound)
	expectNodeNames(t, ns, "game-0")
}

// The drain: a pod being deleted is listed terminating (serving while
// it still answers). Its ClusterNode says Draining, nodes.json lists it as
// draining (and not ready, for older readers), and skynet's file has no
// line for it, so skynet senders wait as for a node not ready.
func TestTerminatingPodMakesItsNodeDraining(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	create(t, podSlice(ns, "game", "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "game-1", ip: "10.0.0.11", ready: true}))
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 0))
	expectSet(t, ns, "game", 2, 2, 2, 0, skycallv1.ReasonAllNodesReady)

	for _, going := range []pod{
		{name: "game-1", ip: "10.0.0.11", terminating: true, serving: true},
		{name: "game-1", ip: "10.0.0.11", terminating: true, serving: false},
		{name: "game-1", ip: "10.0.0.11", terminating: true, serving: true, published: true},
	} {
		serving := fmt.Sprintf("serving=%v ready=%v", going.serving, going.published)
		// From Ready each time, so that each case is seen on its own.
		updatePods(t, ns, "game-a", pod{name: "game-0", ip: "10.0.0.10", ready: true}, pod{name: "game-1", ip: "10.0.0.11", ready: true})
		expectReady(t, ns, "game-1", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.0.0.11:2526")
		updatePods(t, ns, "game-a", pod{name: "game-0", ip: "10.0.0.10", ready: true}, going)
		cn := expectReady(t, ns, "game-1", metav1.ConditionFalse, skycallv1.ReasonDraining, "")
		want := []skycallv1.Endpoint{{Address: "10.0.0.11:2526", PodName: "game-1", PodUID: "uid-game-1", Terminating: true}}
		if !slices.Equal(cn.Status.Endpoints, want) {
			t.Errorf("%s: status.endpoints %+v, want %+v", serving, cn.Status.Endpoints, want)
		}
		expectSet(t, ns, "game", 2, 2, 1, 1, skycallv1.ReasonNodesNotReady)
		expectRegistryLines(t, ns, `game_0 = "10.0.0.10:2526"`)
		_, doc, err := registry(ns)
		if err != nil || !slices.Equal(doc.Draining, []string{"game_1"}) || !slices.Equal(doc.NotReady, []string{"game_1"}) {
			t.Errorf("%s: nodes.json %+v (%v), want game_1 draining and not ready", serving, doc, err)
		}
	}

	// The replacement, ready, while the old pod is still terminating
	// (another address): Ready at the new one, new incarnation.
	updatePods(t, ns, "game-a",
		pod{name: "game-0", ip: "10.0.0.10", ready: true},
		pod{name: "game-1", ip: "10.0.0.11", terminating: true},
		pod{name: "game-1", ip: "10.0.0.21", uid: "uid-game-1-b", ready: true})
	cn := expectReady(t, ns, "game-1", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.0.0.21:2526")
	if len(cn.Status.Endpoints) != 2 || cn.Status.Endpoints[1].PodUID != "uid-game-1-b" || cn.Status.Endpoints[1].Terminating {
		t.Errorf("status.endpoints %+v, want the terminating old pod and the ready new one", cn.Status.Endpoints)
	}
	expectSet(t, ns, "game", 2, 2, 2, 0, skycallv1.ReasonAllNodesReady)
	expectRegistryLines(t, ns, `game_0 = "10.0.0.10:2526"`, `game_1 = "10.0.0.21:2526"`)
}

func TestBadClusterNodeSetsAreRejected(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		template string
		why      string
	}{
		{"game", "contain {pod} or {ordinal}"},
		{"{ordinal}", "must start with a letter"},
		{"{ordinal}_game", "must start with a letter"},
		{"-{pod}", "must start with a letter"},
		{"__{pod}", "must not start with __"},
		{"game {pod}", "should match"},
		{"game_{index}", "should match"},
		{strings.Repeat("g", 60) + "{pod}", "Too long"},
	}
	for _, c := range cases {
		set := nodeSet(ns, "bad", "game", c.template, 0)
		err := k8s.Create(context.Background(), set)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("template %q: got %v, want rejected saying %q", c.template, err, c.why)
			_ = k8s.Delete(context.Background(), set)
		}
	}
	for i, ok := range []string{"{pod}", "game_{ordinal}", "_{ordinal}", "{pod}.{ordinal}", "G{ordinal}-x"} {
		if err := k8s.Create(context.Background(), nodeSet(ns, fmt.Sprintf("ok-%d", i), "game", ok, 0)); err != nil {
			t.Errorf("template %q rejected: %v", ok, err)
		}
	}
	// The template defaults to {pod}, the grace to 30 seconds.
	set := &skycallv1.ClusterNodeSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "defaults"},
		Spec: skycallv1.ClusterNodeSetSpec{Service: skycallv1.SetServiceReference{Name: "game", Port: intstr.FromInt32(2526)}}}
	create(t, set)
	if set.Spec.NodeName != "{pod}" || ptr.Deref(set.Spec.RemoveAfterSeconds, -1) != 30 {
		t.Errorf("defaults: nodeName %q removeAfterSeconds %v, want {pod} and 30", set.Spec.NodeName, set.Spec.RemoveAfterSeconds)
	}
}

func TestRenderNodeName(t *testing.T) {
	cases := []struct {
		template, pod, want, err string
	}{
		{"{pod}", "game-0", "game-0", ""},
		{"game_{ordinal}", "game-12", "game_12", ""},
		{"{pod}_{ordinal}", "db-3", "db-3_3", ""},
		{"game_{ordinal}", "canary", "", "ordinal"},
		{"game_{ordinal}", "game-", "", "ordinal"},
		{"game_{ordinal}", "game-1a", "", "ordinal"},
		{"{pod}", "0game", "", "must start with a letter"},
		{"{pod}", "end", "", "Lua keyword"},
		{"x{pod}", strings.Repeat("a", 63), "", "longer than 63"},
	}
	for _, c := range cases {
		got, err := controllers.RenderNodeName(c.template, c.pod)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("RenderNodeName(%q, %q) = %q, %v; want %q, error containing %q", c.template, c.pod, got, err, c.want, c.err)
		}
	}
}

// reconcileErrors is how many times the set controller's Reconcile has
// returned an error (controller-runtime retries each one with a backoff).
func reconcileErrors(t *testing.T) float64 {
	t.Helper()
	m := series(t, "controller_runtime_reconcile_errors_total", map[string]string{"controller": "clusternodeset"})
	return m.GetCounter().GetValue()
}

// An EndpointSlice may name a pod that makes a valid node name but not a
// valid object name (the API server does not check target references):
// only that pod goes without a ClusterNode, and says why; the rest of the
// set is reconciled as usual and nothing is retried.
func TestSetGivesOnlyThePodWithABadObjectNameNoNode(t *testing.T) {
	ns := newNamespace(t)
	errorsBefore := reconcileErrors(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	game0 := pod{name: "game-0", ip: "10.0.0.10", ready: true}
	bad := []pod{{name: "Web-0", ip: "10.0.0.20", ready: true}, {name: "web_1", ip: "10.0.0.21", ready: true}}
	create(t, podSlice(ns, "game", "game-a", game0, bad[0], pod{name: "game-1", ip: "10.0.0.11", ready: true}, bad[1]))
	start := time.Now()
	create(t, nodeSet(ns, "game", "game", "{pod}", 0))

	set := expectSet(t, ns, "game", 4, 2, 2, 0, skycallv1.ReasonInvalidNodeName)
	t.Logf("the 2 good pods' nodes Ready and the set's status written %v after the set was created", time.Since(start).Round(time.Millisecond))
	msg := meta.FindStatusCondition(set.Status.Conditions, skycallv1.ConditionReady).Message
	for _, p := range bad {
		if !strings.Contains(msg, p.name+": ") || !strings.Contains(msg, fmt.Sprintf("%q is not a valid object name", p.name)) {
			t.Errorf("message %q does not say that pod %s has no valid object name", msg, p.name)
		}
	}
	if !strings.Contains(msg, "RFC 1123 subdomain") {
		t.Errorf("message %q does not say what an object name must be", msg)
	}
	expectNodeNames(t, ns, "game-0", "game-1")

	// A pod leaving with removeAfterSeconds 0 loses its node at once.
	updatePods(t, ns, "game-a", game0, bad[0], bad[1])
	t.Logf("game-1's node removed %v after its pod left", waitNodeGone(t, ns, "game-1", 5*time.Second))
	expectSet(t, ns, "game", 3, 1, 1, 0, skycallv1.ReasonInvalidNodeName)
	expectNodeNames(t, ns, "game-0")
	if n := reconcileErrors(t) - errorsBefore; n != 0 {
		t.Errorf("the set controller failed %v time(s), want none: a pod with a bad name is reported, not retried", n)
	}
}

// The API server refusing one pod's ClusterNode (here an admission policy)
// costs only that node: the others are created and removed on time, the
// status is written, and the refused one is retried until it is accepted.
func TestSetReconcilesTheRestWhileOneNodeIsRefused(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "refuse-game-2-" + ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{skycallv1.GroupVersion.Group},
						APIVersions: []string{skycallv1.GroupVersion.Version}, Resources: []string{"clusternodes"}},
				}}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: "object.metadata.name != 'game-2'", Message: "the test refuses game-2"}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		},
	}
	create(t, policy)
	t.Cleanup(func() { _ = k8s.Delete(ctx, policy) })
	create(t, binding)
	t.Cleanup(func() { _ = k8s.Delete(ctx, binding) })
	// The policy takes a moment to be enforced.
	eventually(t, wait, func() error {
		probe := addressNode(ns, "game-2", "10.0.0.12:2526")
		err := k8s.Create(ctx, probe)
		if err == nil {
			_ = k8s.Delete(ctx, probe)
			return fmt.Errorf("game-2 not refused yet")
		}
		if !strings.Contains(err.Error(), "the test refuses game-2") {
			return err
		}
		return nil
	})

	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	game0 := pod{name: "game-0", ip: "10.0.0.10", ready: true}
	game2 := pod{name: "game-2", ip: "10.0.0.12", ready: true}
	create(t, podSlice(ns, "game", "game-a", game0, pod{name: "game-1", ip: "10.0.0.11", ready: true}, game2))
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 1))
	expectSet(t, ns, "game", 3, 2, 2, 0, skycallv1.ReasonNodesNotReady)
	expectNodeNames(t, ns, "game-0", "game-1")

	// game-1 leaves: its node goes after removeAfterSeconds, not after
	// the refused node's next retry.
	updatePods(t, ns, "game-a", game0, game2)
	t.Logf("game-1's node removed %v after its pod left (removeAfterSeconds 1)", waitNodeGone(t, ns, "game-1", 3*time.Second))
	expectSet(t, ns, "game", 2, 1, 1, 0, skycallv1.ReasonNodesNotReady)

	// Once the API server accepts it, game-2 gets its node.
	if err := k8s.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	accepted := time.Now()
	expectNodeNames(t, ns, "game-0", "game-2")
	t.Logf("game-2's node created %v after the policy was lifted", time.Since(accepted).Round(time.Millisecond))
	expectSet(t, ns, "game", 2, 2, 2, 0, skycallv1.ReasonAllNodesReady)
}

// A node stays at least removeAfterSeconds after its pod left, to the
// sub-second. Pods leave a quarter of a second apart, so a gone-since mark
// cut to the second would remove at least one of them early.
func TestSetNeverRemovesANodeBeforeRemoveAfterSeconds(t *testing.T) {
	const grace = 2 * time.Second
	ns := newNamespace(t)
	ctx := context.Background()
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	names := []string{"game-0", "game-1", "game-2", "game-3"}
	for i, name := range names {
		create(t, podSlice(ns, "game", name, pod{name: name, ip: fmt.Sprintf("10.0.0.%d", 10+i), ready: true}))
	}
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", int32(grace/time.Second)))
	expectSet(t, ns, "game", 4, 4, 4, 0, skycallv1.ReasonAllNodesReady)

	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &skycallv1.ClusterNodeList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	left := map[string]time.Time{}
	first := time.Now()
	for i, name := range names {
		time.Sleep(time.Until(first.Add(time.Duration(i) * time.Second / time.Duration(len(names)))))
		left[name] = time.Now() // before the write: the pod leaves no sooner
		updatePods(t, ns, name)
	}
	gone := map[string]time.Time{}
	deadline := time.After(grace + wait)
	for len(gone) < len(names) {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch of ClusterNodes ended")
			}
			if cn, isNode := ev.Object.(*skycallv1.ClusterNode); isNode && ev.Type == watch.Deleted {
				gone[cn.Name] = time.Now()
			}
		case <-deadline:
			t.Fatalf("after %v only these nodes were removed: %v", grace+wait, gone)
		}
	}
	for _, name := range names {
		kept := gone[name].Sub(left[name])
		t.Logf("%s removed %v after its pod left", name, kept.Round(time.Millisecond))
		if kept < grace {
			t.Errorf("%s removed %v after its pod left, before removeAfterSeconds (%v)", name, kept, grace)
		}
	}
}

// A gone-since mark in whole seconds, as older operators wrote it, is
// still read: here one from two hours ago, past the grace.
func TestSetReadsAGoneSinceMarkInWholeSeconds(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	game0 := pod{name: "game-0", ip: "10.0.0.10", ready: true}
	create(t, podSlice(ns, "game", "game-a", game0, pod{name: "game-1", ip: "10.0.0.11", ready: true}))
	create(t, nodeSet(ns, "game", "game", "game_{ordinal}", 3600))
	expectSet(t, ns, "game", 2, 2, 2, 0, skycallv1.ReasonAllNodesReady)
	updatePods(t, ns, "game-a", game0)
	eventually(t, wait, func() error {
		cn := setNodes(t, ns)["game-1"]
		if cn.Annotations[skycallv1.AnnotationPodGoneSince] == "" {
			return fmt.Errorf("game-1 not marked yet")
		}
		cn.Annotations[skycallv1.AnnotationPodGoneSince] = time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
		return k8s.Update(context.Background(), &cn)
	})
	expectNodeNames(t, ns, "game-0")
}
