package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/controllers"
	registrypkg "github.com/skycall-io/skycall/sender/registry"
)

// editedByTest starts every clustername.lua the test writes itself, so that
// the recorder can tell the operator's versions from the test's forgeries.
const editedByTest = "-- edited by the test\n"

// generations records the generation of every version of a namespace's
// registry ConfigMap that the operator wrote, as a watch sees them: none may
// be missed between two polls.
type generations struct {
	mu   sync.Mutex
	seen []int64
}

func recordGenerations(t *testing.T, ns string) *generations {
	t.Helper()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &corev1.ConfigMapList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	g := &generations{}
	go func() {
		for ev := range w.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok || cm.Name != registrypkg.ConfigMapName || ev.Type == watch.Deleted ||
				strings.HasPrefix(cm.Data[registrypkg.ConfigMapLuaKey], editedByTest) {
				continue
			}
			doc, err := registrypkg.ParseNodesJSON([]byte(cm.Data[registrypkg.ConfigMapJSONKey]))
			if err != nil {
				continue
			}
			g.mu.Lock()
			if n := len(g.seen); n == 0 || g.seen[n-1] != doc.Generation {
				g.seen = append(g.seen, doc.Generation)
			}
			g.mu.Unlock()
		}
	}()
	return g
}

func (g *generations) max() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var m int64
	for _, v := range g.seen {
		m = max(m, v)
	}
	return m
}

// checkIncreasing fails the test unless every version the operator wrote
// had a higher generation than the one before.
func (g *generations) checkIncreasing(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := 1; i < len(g.seen); i++ {
		if g.seen[i] <= g.seen[i-1] {
			t.Fatalf("registry generation went from %d to %d (all: %v)", g.seen[i-1], g.seen[i], g.seen)
		}
	}
	t.Logf("generations written: %v", g.seen)
}

// expectGenerationAbove waits until the registry is the operator's again
// (labelled, db back at its address) with a generation above floor.
func expectGenerationAbove(t *testing.T, ns string, floor int64) int64 {
	t.Helper()
	var gen int64
	eventually(t, wait, func() error {
		lua, doc, err := registry(ns)
		if err != nil {
			return err
		}
		if got := luaLines(lua); len(got) != 1 || got[0] != `db = "10.0.0.1:1"` {
			return fmt.Errorf("clustername.lua lines %q", got)
		}
		if doc.Generation <= floor {
			return fmt.Errorf("generation %d, want above %d", doc.Generation, floor)
		}
		gen = doc.Generation
		return nil
	})
	return gen
}

// The registry generation never decreases, whatever
// happens to the ConfigMap: edits (even of the generation itself), a
// stripped label, deletion, all ClusterNodes going and coming back, and an
// operator that restarts meanwhile.
func TestRegistryGenerationNeverGoesBackwards(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	gens := recordGenerations(t, ns)
	key := types.NamespacedName{Namespace: ns, Name: registrypkg.ConfigMapName}
	create(t, addressNode(ns, "db", "10.0.0.1:1"))
	high := expectGenerationAbove(t, ns, 0)

	forge := func(edit func(cm *corev1.ConfigMap)) {
		t.Helper()
		var cm corev1.ConfigMap
		if err := k8s.Get(ctx, key, &cm); err != nil {
			t.Fatal(err)
		}
		cm.Data[registrypkg.ConfigMapLuaKey] = editedByTest + `db = "6.6.6.6:6"` + "\n"
		cm.Data[registrypkg.ConfigMapJSONKey] = `{"generation":1,"ready":{"db":"6.6.6.6:6"},"down":[],"notReady":[]}`
		edit(&cm)
		if err := k8s.Update(ctx, &cm); err != nil {
			t.Fatal(err)
		}
	}

	// Someone edits the content and winds the generation back to 1.
	forge(func(*corev1.ConfigMap) {})
	high = expectGenerationAbove(t, ns, high)

	// Someone strips the label (the operator's cache loses the object) and
	// winds the generation back.
	forge(func(cm *corev1.ConfigMap) { delete(cm.Labels, registrypkg.ConfigMapLabel) })
	high = expectGenerationAbove(t, ns, high)

	// Someone deletes it.
	if err := k8s.Delete(ctx, &corev1.ConfigMap{ObjectMeta: ctrl.ObjectMeta{Namespace: ns, Name: key.Name}}); err != nil {
		t.Fatal(err)
	}
	high = expectGenerationAbove(t, ns, high)

	// Deleted again, and the operator restarts before it rewrites it: a
	// new reconciler with nothing in memory and no cache (the suite's
	// operator may win the race; it keeps no generation in memory either,
	// so both are a restarted operator).
	if err := k8s.Delete(ctx, &corev1.ConfigMap{ObjectMeta: ctrl.ObjectMeta{Namespace: ns, Name: key.Name}}); err != nil {
		t.Fatal(err)
	}
	restarted := &controllers.RegistryReconciler{Client: k8s, APIReader: k8s}
	if _, err := restarted.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatalf("restarted operator: %v", err)
	}
	high = expectGenerationAbove(t, ns, high)

	// The last ClusterNode goes (and the registry with it), then one comes back.
	if err := k8s.Delete(ctx, addressNode(ns, "db", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if _, _, err := registry(ns); err == nil {
			return fmt.Errorf("registry still exists")
		}
		return nil
	})
	create(t, addressNode(ns, "db", "10.0.0.1:1"))
	high = expectGenerationAbove(t, ns, high)

	// An ordinary change still counts up.
	create(t, &skycallv1.ClusterNode{ObjectMeta: ctrl.ObjectMeta{Namespace: ns, Name: "cache"},
		Spec: skycallv1.ClusterNodeSpec{Address: "10.0.0.2:2", Down: true}})
	eventually(t, wait, func() error {
		_, doc, err := registry(ns)
		if err != nil {
			return err
		}
		if len(doc.Down) != 1 || doc.Generation <= high {
			return fmt.Errorf("nodes.json %+v, want cache down with a generation above %d", doc, high)
		}
		return nil
	})
	eventually(t, wait, func() error {
		if gens.max() <= high {
			return fmt.Errorf("the watch has not seen the last version yet")
		}
		return nil
	})
	gens.checkIncreasing(t)
}
