package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/localcp"
)

// The Kubernetes tests share one real kube-apiserver and etcd, started on
// first use. No operator runs: the tests write ClusterNode status
// themselves, as the operator would.
var (
	cpOnce sync.Once
	cp     *localcp.ControlPlane
	cpErr  error
	k8s    client.Client
	nsSeq  atomic.Int32
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		_ = cp.Stop()
	}
	os.Exit(code)
}

func controlPlane(t *testing.T) (*localcp.ControlPlane, client.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real API server; not in -short")
	}
	cpOnce.Do(func() {
		cp, cpErr = localcp.Start(localcp.Options{CRDDirs: []string{"config/crd/bases"}})
		if cpErr != nil {
			return
		}
		k8s, cpErr = cp.Client()
	})
	if cpErr != nil {
		t.Fatalf("control plane: %v", cpErr)
	}
	return cp, k8s
}

func newNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := fmt.Sprintf("reg-%d-%d", os.Getpid()%10000, nsSeq.Add(1))
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

func createNode(t *testing.T, c client.Client, ns, name, nodeName string) *skycallv1.ClusterNode {
	t.Helper()
	cn := &skycallv1.ClusterNode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       skycallv1.ClusterNodeSpec{NodeName: nodeName, Address: "10.0.0.1:2528"},
	}
	if err := c.Create(context.Background(), cn); err != nil {
		t.Fatal(err)
	}
	return cn
}

// setStatus writes a ClusterNode's status as the operator would.
func setStatus(t *testing.T, c client.Client, cn *skycallv1.ClusterNode, ready bool, reason, addr string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Get(ctx, client.ObjectKeyFromObject(cn), cn); err != nil {
		t.Fatal(err)
	}
	cn.Status.NodeName = cn.EffectiveNodeName()
	cn.Status.Address = addr
	cn.Status.ObservedGeneration = cn.Generation
	st := metav1.ConditionFalse
	if ready {
		st = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&cn.Status.Conditions, metav1.Condition{
		Type: skycallv1.ConditionReady, Status: st, Reason: reason,
		Message: "set by the test", ObservedGeneration: cn.Generation,
	})
	if err := c.Status().Update(ctx, cn); err != nil {
		t.Fatal(err)
	}
}

func TestKubernetesRegistryFollowsClusterNodes(t *testing.T) {
	cp, c := controlPlane(t)
	ns := newNamespace(t, c)
	ctx := context.Background()
	db := createNode(t, c, ns, "db", "")
	game := createNode(t, c, ns, "game-1", "game_1")

	reg, err := NewRegistry(cp.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	var kicks atomic.Int32
	defer reg.Watch("db", func() { kicks.Add(1) })()

	lookup := func(node string) registry.Entry {
		t.Helper()
		e, err := reg.Lookup(node)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", node, err)
		}
		return e
	}
	// Before the first list arrives a node is Unknown, never Absent.
	if e := lookup("db"); e.State != registry.Unknown && e.State != registry.NotReady {
		t.Fatalf("first Lookup = %+v, want unknown (loading) or not_ready", e)
	}
	testkit.Eventually(t, "loaded", func() bool { return lookup("db").State == registry.NotReady })
	if kicks.Load() == 0 {
		t.Error("registry.Watchers not told when the ClusterNodes loaded")
	}
	if e := lookup("nope"); e.State != registry.Absent {
		t.Fatalf("Lookup of a node with no ClusterNode = %+v, want absent", e)
	}
	// spec.nodeName names the node, before and after the operator wrote status.nodeName.
	if e := lookup("game_1"); e.State != registry.NotReady {
		t.Fatalf("Lookup(game_1) = %+v", e)
	}

	setStatus(t, c, db, false, skycallv1.ReasonNoReadyEndpoints, "")
	testkit.Eventually(t, "the reason is seen", func() bool {
		return strings.Contains(lookup("db").Reason, skycallv1.ReasonNoReadyEndpoints)
	})
	setStatus(t, c, db, true, skycallv1.ReasonResolved, "10.0.0.7:2528")
	testkit.Eventually(t, "ready", func() bool { e := lookup("db"); return e.State == registry.Ready && e.Address == "10.0.0.7:2528" })
	setStatus(t, c, game, true, skycallv1.ReasonResolved, "10.0.0.8:2528")
	testkit.Eventually(t, "game_1 ready", func() bool { return lookup("game_1").State == registry.Ready })

	// spec.down: down at once, before the operator reacts.
	if err := c.Get(ctx, client.ObjectKeyFromObject(db), db); err != nil {
		t.Fatal(err)
	}
	db.Spec.Down = true
	if err := c.Update(ctx, db); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "down", func() bool { return lookup("db").State == registry.Down })
	db.Spec.Down = false
	if err := c.Update(ctx, db); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "back up", func() bool { return lookup("db").State == registry.Ready })

	// Two ClusterNodes claiming one name: neither is ready.
	twin := createNode(t, c, ns, "db-twin", "db")
	testkit.Eventually(t, "conflict", func() bool {
		e := lookup("db")
		return e.State == registry.NotReady && strings.Contains(e.Reason, skycallv1.ReasonNameConflict)
	})
	if err := c.Delete(ctx, twin); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "conflict resolved", func() bool { return lookup("db").State == registry.Ready })

	if err := c.Delete(ctx, db); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "deleted", func() bool { return lookup("db").State == registry.Absent })
}

func TestKubernetesRegistryAdministrativelyDownStatus(t *testing.T) {
	cp, c := controlPlane(t)
	ns := newNamespace(t, c)
	db := createNode(t, c, ns, "db", "")
	setStatus(t, c, db, false, skycallv1.ReasonAdministrativelyDown, "")
	reg, _ := NewRegistry(cp.Config, ns)
	defer reg.Close()
	testkit.Eventually(t, "down from the status", func() bool { e, _ := reg.Lookup("db"); return e.State == registry.Down })
}

func TestKubernetesRegistryForbiddenIsAClearError(t *testing.T) {
	cp, c := controlPlane(t)
	ns := newNamespace(t, c)
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sender"}}
	if err := c.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	// Only get: list and watch are missing.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cn-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{skycallv1.GroupVersion.Group},
			Resources: []string{"clusternodes"}, Verbs: []string{"get"}}},
	}
	if err := c.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cn-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "cn-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sender", Namespace: ns}},
	}); err != nil {
		t.Fatal(err)
	}
	reg := registryAs(t, cp, ns, "sender")
	var lerr error
	testkit.Eventually(t, "the permission error surfaces", func() bool { _, lerr = reg.Lookup("db"); return lerr != nil })
	if !errors.Is(lerr, registry.ErrRegistry) {
		t.Fatalf("error %v does not wrap registry.ErrRegistry", lerr)
	}
	for _, want := range []string{`"` + ns + `"`, "list", "get, list and watch"} {
		if !strings.Contains(lerr.Error(), want) {
			t.Errorf("error %q should mention %q", lerr, want)
		}
	}
	t.Logf("error: %v", lerr)

	// Granting list and watch heals it.
	role.Rules[0].Verbs = []string{"get", "list", "watch"}
	if err := c.Update(ctx, role); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the registry recovers", func() bool {
		e, err := reg.Lookup("db")
		return err == nil && e.State == registry.Absent
	})
}

// registryAs is a Registry of ns read as its ServiceAccount sa.
func registryAs(t *testing.T, cp *localcp.ControlPlane, ns, sa string) *Registry {
	t.Helper()
	path, err := cp.ServiceAccountKubeconfig(context.Background(), ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := NewRegistry(cfg, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}
