package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	registrypkg "github.com/skycall-io/skycall/sender/registry"
)

const wait = 20 * time.Second

func addressNode(ns, name, addr string) *skycallv1.ClusterNode {
	return &skycallv1.ClusterNode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       skycallv1.ClusterNodeSpec{Address: addr},
	}
}

func serviceNode(ns, name, svc string, port intstr.IntOrString, pod string) *skycallv1.ClusterNode {
	return &skycallv1.ClusterNode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: skycallv1.ClusterNodeSpec{Service: &skycallv1.ServiceReference{
			Name: svc, Port: port, Pod: pod,
		}},
	}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// expectReady waits until the named ClusterNode's Ready condition has the
// given status and reason (and, when addr is not empty, that address).
func expectReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason, addr string) *skycallv1.ClusterNode {
	t.Helper()
	var node skycallv1.ClusterNode
	eventually(t, wait, func() error {
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &node); err != nil {
			return err
		}
		c := meta.FindStatusCondition(node.Status.Conditions, skycallv1.ConditionReady)
		if c == nil {
			return fmt.Errorf("no Ready condition yet")
		}
		if c.Status != status || c.Reason != reason || node.Status.Address != addr {
			return fmt.Errorf("Ready=%s/%s address %q (%s), want %s/%s address %q", c.Status, c.Reason, node.Status.Address, c.Message, status, reason, addr)
		}
		if c.ObservedGeneration != node.Generation || node.Status.ObservedGeneration != node.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", c.ObservedGeneration, node.Generation)
		}
		return nil
	})
	return &node
}

// registry reads the namespace's registry ConfigMap.
func registry(ns string) (lua string, doc registrypkg.NodesDocument, err error) {
	var cm corev1.ConfigMap
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: registrypkg.ConfigMapName}, &cm); err != nil {
		return "", doc, err
	}
	if cm.Labels[registrypkg.ConfigMapLabel] != "true" {
		return "", doc, fmt.Errorf("registry ConfigMap lacks label %s", registrypkg.ConfigMapLabel)
	}
	d, err := registrypkg.ParseNodesJSON([]byte(cm.Data[registrypkg.ConfigMapJSONKey]))
	if err != nil {
		return "", doc, err
	}
	return cm.Data[registrypkg.ConfigMapLuaKey], *d, nil
}

// expectRegistryLines waits until clustername.lua holds exactly these node
// lines (comments ignored), in this order.
func expectRegistryLines(t *testing.T, ns string, want ...string) {
	t.Helper()
	eventually(t, wait, func() error {
		lua, _, err := registry(ns)
		if err != nil {
			return err
		}
		got := luaLines(lua)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("clustername.lua lines %q, want %q", got, want)
		}
		return nil
	})
}

func luaLines(lua string) []string {
	var out []string
	for _, l := range strings.Split(lua, "\n") {
		if l != "" && !strings.HasPrefix(l, "--") {
			out = append(out, l)
		}
	}
	return out
}

func service(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: ports, Selector: map[string]string{"app": name}},
	}
}

type ep struct {
	ip    string
	pod   string
	ready bool
}

func endpointSlice(ns, svc, sliceName, portName string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: sliceName, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.pod, UID: types.UID("uid-" + e.pod)},
		})
	}
	return es
}

func TestAddressNodeIsReadyWithItsAddress(t *testing.T) {
	ns := newNamespace(t)
	create(t, addressNode(ns, "db", "10.1.2.3:2528"))
	node := expectReady(t, ns, "db", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.1.2.3:2528")
	if node.Status.NodeName != "db" {
		t.Errorf("status.nodeName = %q, want db", node.Status.NodeName)
	}
	expectRegistryLines(t, ns, `db = "10.1.2.3:2528"`)
}

func TestSpecNodeNameIsTheNameSendersUse(t *testing.T) {
	ns := newNamespace(t)
	n := addressNode(ns, "game-1", "game.example.com:7000")
	n.Spec.NodeName = "game_1"
	create(t, n)
	node := expectReady(t, ns, "game-1", metav1.ConditionTrue, skycallv1.ReasonResolved, "game.example.com:7000")
	if node.Status.NodeName != "game_1" {
		t.Errorf("status.nodeName = %q, want game_1", node.Status.NodeName)
	}
	// A name that is no Lua identifier is written so skynet's loader takes it.
	create(t, addressNode(ns, "db-0", "[fd00::1]:2528"))
	expectRegistryLines(t, ns, `_ENV["db-0"] = "[fd00::1]:2528"`, `game_1 = "game.example.com:7000"`)
}

func TestServiceNodeFollowsReadyEndpoints(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "store", corev1.ServicePort{Name: "cluster", Port: 2528}))
	create(t, serviceNode(ns, "store", "store", intstr.FromString("cluster"), ""))
	create(t, endpointSlice(ns, "store", "store-a", "cluster", 2528, ep{ip: "10.0.0.7", pod: "store-0", ready: false}))

	expectReady(t, ns, "store", metav1.ConditionFalse, skycallv1.ReasonNoReadyEndpoints, "")
	// Not ready: no line, so skynet callers wait; nodes.json says not ready.
	expectRegistryLines(t, ns)
	_, doc, err := registry(ns)
	if err != nil || len(doc.Ready) != 0 || len(doc.Down) != 0 || len(doc.NotReady) != 1 || doc.NotReady[0] != "store" {
		t.Fatalf("nodes.json = %+v (%v), want store not ready", doc, err)
	}
	genBefore := doc.Generation

	// The endpoint becomes ready: status and registry follow.
	var es discoveryv1.EndpointSlice
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "store-a"}, &es); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	es.Endpoints[0].Conditions.Ready = ptr.To(true)
	if err := k8s.Update(context.Background(), &es); err != nil {
		t.Fatal(err)
	}
	node := expectReady(t, ns, "store", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.0.0.7:2528")
	t.Logf("EndpointSlice ready to ClusterNode Ready: %v", time.Since(start))
	if len(node.Status.Endpoints) != 1 || node.Status.Endpoints[0].PodName != "store-0" || node.Status.Endpoints[0].PodUID != "uid-store-0" {
		t.Errorf("status.endpoints = %+v, want store-0 with its UID", node.Status.Endpoints)
	}
	expectRegistryLines(t, ns, `store = "10.0.0.7:2528"`)
	_, doc, _ = registry(ns)
	if doc.Generation <= genBefore || len(doc.NotReady) != 0 || doc.Ready["store"] != "10.0.0.7:2528" {
		t.Errorf("nodes.json = %+v, want ready at 10.0.0.7:2528 with generation > %d", doc, genBefore)
	}

	// The Service goes away: ServiceNotFound, and the line leaves.
	if err := k8s.Delete(context.Background(), service(ns, "store")); err != nil {
		t.Fatal(err)
	}
	expectReady(t, ns, "store", metav1.ConditionFalse, skycallv1.ReasonServiceNotFound, "")
	expectRegistryLines(t, ns)
}

func TestServicePortByNumberAndMissingPort(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "svc", corev1.ServicePort{Port: 9000}))
	create(t, endpointSlice(ns, "svc", "svc-a", "", 9000, ep{ip: "10.0.0.9", pod: "svc-0", ready: true}))
	create(t, serviceNode(ns, "by-number", "svc", intstr.FromInt32(9000), ""))
	create(t, serviceNode(ns, "no-port", "svc", intstr.FromString("gate"), ""))
	expectReady(t, ns, "by-number", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.0.0.9:9000")
	node := expectReady(t, ns, "no-port", metav1.ConditionFalse, skycallv1.ReasonPortNotFound, "")
	msg := meta.FindStatusCondition(node.Status.Conditions, skycallv1.ConditionReady).Message
	if !strings.Contains(msg, "gate") || !strings.Contains(msg, "9000") {
		t.Errorf("PortNotFound message %q should name the wanted port and the ports there are", msg)
	}
}

func TestServicePodPicksThatPodsEndpoint(t *testing.T) {
	ns := newNamespace(t)
	create(t, service(ns, "game", corev1.ServicePort{Name: "cluster", Port: 2526}))
	create(t, endpointSlice(ns, "game", "game-a", "cluster", 2526,
		ep{ip: "10.0.1.1", pod: "game-0", ready: true},
		ep{ip: "10.0.1.2", pod: "game-1", ready: true},
		ep{ip: "10.0.1.3", pod: "game-2", ready: false}))
	n1 := serviceNode(ns, "game-1", "game", intstr.FromString("cluster"), "game-1")
	n1.Spec.NodeName = "game_1"
	create(t, n1)
	n2 := serviceNode(ns, "game-2", "game", intstr.FromString("cluster"), "game-2")
	n2.Spec.NodeName = "game_2"
	create(t, n2)
	node := expectReady(t, ns, "game-1", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.0.1.2:2526")
	if len(node.Status.Endpoints) != 1 || node.Status.Endpoints[0].PodName != "game-1" {
		t.Errorf("endpoints %+v, want only game-1's", node.Status.Endpoints)
	}
	expectReady(t, ns, "game-2", metav1.ConditionFalse, skycallv1.ReasonNoReadyEndpoints, "")
	expectRegistryLines(t, ns, `game_1 = "10.0.1.2:2526"`)
}

func TestDownNodeIsFalseInRegistryAndDeletedNodeLeaves(t *testing.T) {
	ns := newNamespace(t)
	create(t, addressNode(ns, "a", "10.0.0.1:1"))
	down := addressNode(ns, "b", "10.0.0.2:2")
	down.Spec.Down = true
	create(t, down)
	expectReady(t, ns, "b", metav1.ConditionFalse, skycallv1.ReasonAdministrativelyDown, "")
	expectRegistryLines(t, ns, `a = "10.0.0.1:1"`, `b = false`)
	_, doc, _ := registry(ns)
	if len(doc.Ready) != 1 || doc.Ready["a"] != "10.0.0.1:1" || len(doc.Down) != 1 || doc.Down[0] != "b" {
		t.Errorf("nodes.json %+v, want b down", doc)
	}

	if err := k8s.Delete(context.Background(), addressNode(ns, "a", "")); err != nil {
		t.Fatal(err)
	}
	expectRegistryLines(t, ns, `b = false`)

	// Bringing b back up restores its address.
	var b skycallv1.ClusterNode
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "b"}, &b); err != nil {
		t.Fatal(err)
	}
	b.Spec.Down = false
	if err := k8s.Update(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	expectRegistryLines(t, ns, `b = "10.0.0.2:2"`)

	// The last ClusterNode gone: the registry goes too.
	if err := k8s.Delete(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if _, _, err := registry(ns); err == nil {
			return fmt.Errorf("registry still exists")
		}
		return nil
	})
}

func TestTwoNodesClaimingOneNameConflict(t *testing.T) {
	ns := newNamespace(t)
	create(t, addressNode(ns, "db", "10.0.0.1:1"))
	expectReady(t, ns, "db", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.0.0.1:1")
	twin := addressNode(ns, "db-twin", "10.0.0.2:2")
	twin.Spec.NodeName = "db"
	create(t, twin)
	node := expectReady(t, ns, "db", metav1.ConditionFalse, skycallv1.ReasonNameConflict, "")
	if msg := meta.FindStatusCondition(node.Status.Conditions, skycallv1.ConditionReady).Message; !strings.Contains(msg, "db-twin") {
		t.Errorf("conflict message %q should name the other ClusterNode", msg)
	}
	expectReady(t, ns, "db-twin", metav1.ConditionFalse, skycallv1.ReasonNameConflict, "")
	expectRegistryLines(t, ns)
	// kubectl describe shows why.
	eventually(t, wait, func() error {
		var evs eventsv1.EventList
		if err := k8s.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "db-twin" && e.Reason == skycallv1.ReasonNameConflict && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("no Warning NameConflict event for db-twin among %d events", len(evs.Items))
	})

	if err := k8s.Delete(context.Background(), twin); err != nil {
		t.Fatal(err)
	}
	expectReady(t, ns, "db", metav1.ConditionTrue, skycallv1.ReasonResolved, "10.0.0.1:1")
	expectRegistryLines(t, ns, `db = "10.0.0.1:1"`)
}

func TestRegistryIsRestoredAfterDeleteOrEdit(t *testing.T) {
	ns := newNamespace(t)
	create(t, addressNode(ns, "db", "10.0.0.1:1"))
	expectRegistryLines(t, ns, `db = "10.0.0.1:1"`)
	key := types.NamespacedName{Namespace: ns, Name: registrypkg.ConfigMapName}

	var cm corev1.ConfigMap
	if err := k8s.Get(context.Background(), key, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data[registrypkg.ConfigMapLuaKey] = "db = \"6.6.6.6:6\"\n"
	if err := k8s.Update(context.Background(), &cm); err != nil {
		t.Fatal(err)
	}
	expectRegistryLines(t, ns, `db = "10.0.0.1:1"`)

	// Someone strips the label, so the operator's cache loses sight of it.
	if err := k8s.Get(context.Background(), key, &cm); err != nil {
		t.Fatal(err)
	}
	delete(cm.Labels, registrypkg.ConfigMapLabel)
	cm.Data[registrypkg.ConfigMapLuaKey] = ""
	if err := k8s.Update(context.Background(), &cm); err != nil {
		t.Fatal(err)
	}
	expectRegistryLines(t, ns, `db = "10.0.0.1:1"`)

	if err := k8s.Delete(context.Background(), &cm); err != nil {
		t.Fatal(err)
	}
	expectRegistryLines(t, ns, `db = "10.0.0.1:1"`)
}

func TestThousandNodesReachReadyAndRegistry(t *testing.T) {
	const n = 1000
	ns := newNamespace(t)
	start := time.Now()
	for i := 0; i < n; i++ {
		create(t, addressNode(ns, fmt.Sprintf("node-%04d", i), fmt.Sprintf("10.%d.%d.1:2526", i/256, i%256)))
	}
	created := time.Since(start)
	eventually(t, 3*time.Minute, func() error {
		_, doc, err := registry(ns)
		if err != nil {
			return err
		}
		if ready := len(doc.Ready); ready != n {
			return fmt.Errorf("%d of %d nodes ready in the registry", len(doc.Ready), n)
		}
		return nil
	})
	var list skycallv1.ClusterNodeList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, node := range list.Items {
		if !meta.IsStatusConditionTrue(node.Status.Conditions, skycallv1.ConditionReady) {
			t.Fatalf("%s is not Ready", node.Name)
		}
	}
	lua, _, _ := registry(ns)
	if got := len(luaLines(lua)); got != n {
		t.Fatalf("clustername.lua has %d lines, want %d", got, n)
	}
	t.Logf("%d ClusterNodes: created in %v, all Ready and in the registry %v after the first create", n, created, time.Since(start))
}
