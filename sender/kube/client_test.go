package kube

import (
	skycallv1 "github.com/skycall-io/skycall/api/v1"

	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
)

// The Client over this registry, against a real kube-apiserver: what a pod
// using NewClient sees as the operator writes its ClusterNodes.

func TestKubernetesRegistryNotReadyThenReadyDeliversInOrder(t *testing.T) {
	cp, k8s := controlPlane(t)
	ctx := testCtx(t)
	peer := serveRecorder(t, "db")
	ns := newNamespace(t, k8s)
	cn := &skycallv1.ClusterNode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec:       skycallv1.ClusterNodeSpec{Address: peer.addr},
	}
	if err := k8s.Create(ctx, cn); err != nil {
		t.Fatal(err)
	}
	reg, err := NewRegistry(cp.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c, queued := newClient(t, reg)

	// Sends and Calls while the node has no Ready condition.
	const n = 30
	want := testkit.Seq("k", n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, m := range want {
		if i%3 == 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reply, err := c.Call(ctx, "db", "@rec", []byte(m))
				if err == nil && string(reply) != m {
					err = fmt.Errorf("reply %q, want %q", reply, m)
				}
				errs <- err
			}()
		} else if err := c.Send(ctx, "db", "@rec", []byte(m)); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, fmt.Sprintf("message %d queued", i), func() bool { return queued() == i+1 })
	}
	testkit.Eventually(t, "the registry has loaded and the node waits", func() bool {
		e, _ := reg.Lookup("db")
		return e.State == registry.NotReady && c.State("db") == sender.StateResolving
	})
	if peer.count() != 0 {
		t.Fatal("delivered before the node was ready")
	}

	// The operator's part: Ready with an address, through the status subresource.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(cn), cn); err != nil {
		t.Fatal(err)
	}
	cn.Status.NodeName, cn.Status.Address = "db", peer.addr
	meta.SetStatusCondition(&cn.Status.Conditions, metav1.Condition{
		Type: skycallv1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: skycallv1.ReasonResolved, Message: "set by the test",
	})
	readyAt := time.Now()
	if err := k8s.Status().Update(ctx, cn); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "all delivered", func() bool { return peer.count() == n })
	equal(t, "delivery order", peer.received(), want)
	first := time.Unix(0, peer.firstAt.Load())
	t.Logf("status Ready -> first delivery: %v", first.Sub(readyAt))
}

func TestKubernetesRegistryForbiddenFailsCallsClearly(t *testing.T) {
	cp, k8s := controlPlane(t)
	ctx := testCtx(t)
	ns := newNamespace(t, k8s)
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sender"}}); err != nil {
		t.Fatal(err)
	}
	reg := registryAs(t, cp, ns, "sender")
	c, _ := newClient(t, reg)
	start := time.Now()
	_, err := c.Call(ctx, "db", "@rec", []byte("x"))
	if !errors.Is(err, registry.ErrRegistry) {
		t.Fatalf("Call without permission to read ClusterNodes: %v, want registry.ErrRegistry", err)
	}
	t.Logf("after %v: %v", time.Since(start), err)
	if err := c.Send(ctx, "db", "@rec", []byte("x")); !errors.Is(err, registry.ErrRegistry) {
		t.Fatalf("Send after the permission error: %v, want registry.ErrRegistry", err)
	}
}

// A StatefulSet pod replaced, as the operator writes it into the pod's
// ClusterNode (Ready at the old pod, Draining, Ready at the new pod with
// its UID) on a real API server, followed by the in-pod Kubernetes
// registry: the draining pod gets nothing new, and what was sent while it
// drained reaches the new pod, in order.
func TestKubernetesRegistryDrainingHoldsMessagesForTheNewPod(t *testing.T) {
	cp, k8s := controlPlane(t)
	ctx := testCtx(t)
	oldPod := serveRecorder(t, "db", server.WithIncarnation("uid-a"))
	newPod := serveRecorder(t, "db", server.WithIncarnation("uid-b"))
	ns := newNamespace(t, k8s)
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
	reg, err := NewRegistry(cp.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c, queued := newClient(t, reg)
	if _, err := c.Call(ctx, "db", "@rec", []byte("to-old")); err != nil {
		t.Fatal(err)
	}

	status(false, skycallv1.ReasonDraining, "", skycallv1.Endpoint{Address: oldPod.addr, PodName: "db-0", PodUID: "uid-a", Terminating: true})
	testkit.Eventually(t, "the client sees the drain", func() bool {
		e, _ := reg.Lookup("db")
		return e.State == registry.Draining && c.State("db") != sender.StateReady
	})
	held := testkit.Seq("held", 20)
	for _, m := range held {
		if err := c.Send(ctx, "db", "@rec", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if q := queued(); q != len(held) {
		t.Fatalf("%d messages queued during the drain, want %d", q, len(held))
	}
	testkit.Eventually(t, "the draining pod's connection closes", func() bool { return oldPod.conns(t) == 0 })

	status(true, skycallv1.ReasonResolved, newPod.addr, skycallv1.Endpoint{Address: newPod.addr, PodName: "db-0", PodUID: "uid-b"})
	if _, err := c.Call(ctx, "db", "@rec", []byte("to-new")); err != nil {
		t.Fatal(err)
	}
	equal(t, "new pod", newPod.received(), append(held, "to-new"))
	equal(t, "old pod", oldPod.received(), []string{"to-old"})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newClient returns a Client on reg, closed at cleanup, and how many
// messages wait in its FIFO for node "db".
func newClient(t *testing.T, reg registry.Registry) (*sender.Client, func() int) {
	t.Helper()
	metrics := prometheus.NewRegistry()
	c := sender.New(reg, sender.WithLogger(testr.New(t)), sender.WithRegisterer(metrics),
		sender.WithBackoff(5*time.Millisecond, 50*time.Millisecond))
	t.Cleanup(func() { c.Close() })
	return c, func() int {
		return max(0, int(testkit.MetricValue(t, metrics, "skycall_sender_queue_messages", map[string]string{"node": "db"})))
	}
}

// recorder is a Server on loopback whose @rec records each payload and
// echoes it.
type recorder struct {
	addr    string
	metrics *prometheus.Registry
	mu      sync.Mutex
	got     []string
	firstAt atomic.Int64 // UnixNano of the first message
}

func serveRecorder(t *testing.T, name string, opts ...server.Option) *recorder {
	t.Helper()
	r := &recorder{metrics: prometheus.NewRegistry()}
	s := server.New(name, append(opts, server.WithRegisterer(r.metrics))...)
	if _, err := s.HandleFunc("@rec", func(_ context.Context, req *server.Request) ([]byte, error) {
		r.firstAt.CompareAndSwap(0, time.Now().UnixNano())
		r.mu.Lock()
		r.got = append(r.got, string(req.Payload))
		r.mu.Unlock()
		return req.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	r.addr = sendertest.Serve(t, s)
	return r
}

func (r *recorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *recorder) count() int { return len(r.received()) }

// conns is how many connections the Server holds open.
func (r *recorder) conns(t *testing.T) int {
	return int(testkit.MetricValue(t, r.metrics, "skycall_server_connections_open", nil))
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}
