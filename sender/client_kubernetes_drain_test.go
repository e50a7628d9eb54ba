package sender

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/sender/registry"
)

// A StatefulSet pod replaced, as the operator writes it into the pod's
// ClusterNode (Ready at the old pod, Draining, Ready at the new pod with
// its UID) on a real API server, followed by the in-pod Kubernetes
// registry: the draining pod gets nothing new, and what was sent while it
// drained reaches the new pod, in order.
func TestKubernetesRegistryDrainingHoldsMessagesForTheNewPod(t *testing.T) {
	cp, k8s := ctControlPlane(t)
	ctx := ctCtx(t)
	oldPod := ctServeAt(t, "db", "127.0.0.1:0", ServerIncarnation("uid-a"))
	newPod := ctServeAt(t, "db", "127.0.0.1:0", ServerIncarnation("uid-b"))
	const ns = "app"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	cn := &skycallv1.ClusterNode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-0"},
		Spec: skycallv1.ClusterNodeSpec{NodeName: "db", Service: &skycallv1.ServiceReference{
			Name: "db", Port: intstr.FromString("cluster"), Pod: "db-0"}},
	}
	if err := k8s.Create(ctx, cn); err != nil {
		t.Fatal(err)
	}
	// status writes what the operator writes for the endpoints it found.
	status := func(ready bool, reason, addr string, eps ...skycallv1.Endpoint) {
		t.Helper()
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cn), cn); err != nil {
			t.Fatal(err)
		}
		st := metav1.ConditionFalse
		if ready {
			st = metav1.ConditionTrue
		}
		cn.Status.NodeName, cn.Status.Address, cn.Status.Endpoints = "db", addr, eps
		cn.Status.ObservedGeneration = cn.Generation
		meta.SetStatusCondition(&cn.Status.Conditions, metav1.Condition{Type: skycallv1.ConditionReady, Status: st,
			Reason: reason, Message: "set by the test", ObservedGeneration: cn.Generation})
		if err := k8s.Status().Update(ctx, cn); err != nil {
			t.Fatal(err)
		}
	}
	status(true, skycallv1.ReasonResolved, oldPod.addr, skycallv1.Endpoint{Address: oldPod.addr, PodName: "db-0", PodUID: "uid-a"})
	reg, err := registry.NewKubernetes(cp.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c := ctNewClient(t, reg)
	if _, err := c.Call(ctx, "db", "@rec", []byte("to-old")); err != nil {
		t.Fatal(err)
	}

	status(false, skycallv1.ReasonDraining, "", skycallv1.Endpoint{Address: oldPod.addr, PodName: "db-0", PodUID: "uid-a", Terminating: true})
	eventually(t, "the client sees the drain", func() bool {
		e, _ := reg.Lookup("db")
		return e.State == registry.Draining && c.State("db") != StateReady
	})
	held := ctSeq("held", 20)
	ctSendAll(t, ctx, c, "db", held)
	if q := ctQueued(c, "db"); q != len(held) {
		t.Fatalf("%d messages queued during the drain, want %d", q, len(held))
	}
	eventually(t, "the draining pod's connection closes", func() bool { return oldPod.srv.srvConnCount() == 0 })

	status(true, skycallv1.ReasonResolved, newPod.addr, skycallv1.Endpoint{Address: newPod.addr, PodName: "db-0", PodUID: "uid-b"})
	if _, err := c.Call(ctx, "db", "@rec", []byte("to-new")); err != nil {
		t.Fatal(err)
	}
	ctEqual(t, "new pod", newPod.received(), append(held, "to-new"))
	ctEqual(t, "old pod", oldPod.received(), []string{"to-old"})
}
