package sender

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/localcp"
)

// ctControlPlane starts a real kube-apiserver and etcd for one test.
func ctControlPlane(t *testing.T) (*localcp.ControlPlane, client.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real API server; not in -short")
	}
	cp, err := localcp.Start(localcp.Options{CRDDirs: []string{"config/crd/bases"}})
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = skycallv1.AddToScheme(scheme)
	k8s, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cp, k8s
}

func TestKubernetesRegistryNotReadyThenReadyDeliversInOrder(t *testing.T) {
	cp, k8s := ctControlPlane(t)
	ctx := ctCtx(t)
	peer := ctServe(t, "db")
	const ns = "app"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	cn := &skycallv1.ClusterNode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec:       skycallv1.ClusterNodeSpec{Address: peer.addr},
	}
	if err := k8s.Create(ctx, cn); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.NewKubernetes(cp.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c := ctNewClient(t, reg)

	// Sends and Calls while the node has no Ready condition.
	const n = 30
	want := ctSeq("k", n)
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
		eventually(t, fmt.Sprintf("message %d queued", i), func() bool { return ctQueued(c, "db") == i+1 })
	}
	eventually(t, "the registry has loaded and the node waits", func() bool {
		e, _ := reg.Lookup("db")
		return e.State == registry.NotReady && c.State("db") == StateResolving
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
	eventually(t, "all delivered", func() bool { return peer.count() == n })
	ctEqual(t, "delivery order", peer.received(), want)
	first := time.Unix(0, peer.firstAt.Load())
	t.Logf("status Ready -> first delivery: %v", first.Sub(readyAt))
}

func TestKubernetesRegistryForbiddenFailsCallsClearly(t *testing.T) {
	cp, k8s := ctControlPlane(t)
	ctx := ctCtx(t)
	const ns = "locked"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sender"}}); err != nil {
		t.Fatal(err)
	}
	path, err := cp.ServiceAccountKubeconfig(ctx, ns, "sender")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.NewKubernetes(cfg, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c := ctNewClient(t, reg)
	start := time.Now()
	_, err = c.Call(ctx, "db", "@rec", []byte("x"))
	if !errors.Is(err, ErrRegistry) {
		t.Fatalf("Call without permission to read ClusterNodes: %v, want ErrRegistry", err)
	}
	t.Logf("after %v: %v", time.Since(start), err)
	if err := c.Send(ctx, "db", "@rec", []byte("x")); !errors.Is(err, ErrRegistry) {
		t.Fatalf("Send after the permission error: %v, want ErrRegistry", err)
	}
}
