package kube

import (
	"sync/atomic"
	"testing"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
)

// TestKubernetesEntriesListTheNamespace: Entries gives one entry per node
// name of the namespace, as the operator writes them into the registry
// ConfigMap (skycall-agent pushes them to skynet), and WatchAll hears of
// every change, whatever the node.
func TestKubernetesEntriesListTheNamespace(t *testing.T) {
	cp, c := controlPlane(t)
	ns := newNamespace(t, c)
	db := createNode(t, c, ns, "db", "")
	createNode(t, c, ns, "game-1", "game_1")

	reg, err := NewRegistry(cp.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	var kicks atomic.Int32
	defer reg.WatchAll(func() { kicks.Add(1) })()

	if entries, synced, err := reg.Entries(); err != nil || (synced && len(entries) != 2) || (!synced && entries != nil) {
		t.Fatalf("first Entries = %v, %v, %v", entries, synced, err)
	}
	testkit.Eventually(t, "loaded", func() bool { _, synced, _ := reg.Entries(); return synced })
	entries, _, _ := reg.Entries()
	if len(entries) != 2 || entries[0].Node != "db" || entries[1].Node != "game_1" ||
		entries[0].State != registry.NotReady || entries[1].State != registry.NotReady {
		t.Fatalf("Entries = %+v, want db and game_1, both not ready", entries)
	}

	before := kicks.Load()
	setStatus(t, c, db, true, "Resolved", "10.0.0.9:2528")
	testkit.Eventually(t, "WatchAll told of db's change", func() bool { return kicks.Load() > before })
	testkit.Eventually(t, "db ready in Entries", func() bool {
		entries, _, _ := reg.Entries()
		return len(entries) == 2 && entries[0].State == registry.Ready && entries[0].Address == "10.0.0.9:2528"
	})
}
