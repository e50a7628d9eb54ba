package controllers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/sender/registry"
)

// A namespace of 10,000 nodes (names like node-01234, IPv4 addresses) fits
// in one registry ConfigMap, both files together.
func TestRegistryOfTenThousandNodesFitsOneConfigMap(t *testing.T) {
	entries := make([]RegistryEntry, 0, 10000)
	for i := 0; i < 10000; i++ {
		e := RegistryEntry{Node: fmt.Sprintf("node-%05d", i), Ready: true, Address: fmt.Sprintf("10.%d.%d.%d:2526", i>>16&255, i>>8&255, i&255)}
		if i%10 == 0 {
			e = RegistryEntry{Node: e.Node, Down: true}
		}
		entries = append(entries, e)
	}
	lua := renderClusterConfig("game", entries)
	doc, err := renderNodesJSON(1<<40, entries)
	if err != nil {
		t.Fatal(err)
	}
	if size := len(lua) + len(doc); size > RegistryMaxBytes {
		t.Fatalf("registry of 10,000 nodes is %d bytes, over the ConfigMap limit of %d", size, RegistryMaxBytes)
	}
	if got := strings.Count(lua, "\n") - 1; got != 10000 {
		t.Errorf("clustername.lua has %d node lines, want 10000", got)
	}
}

// Names that are Lua keywords or not identifiers are written so that
// skynet's loader (a Lua chunk whose environment is the node table) takes
// them; nodes not ready yet have no line.
func TestClusterConfigLines(t *testing.T) {
	lua := renderClusterConfig("ns", []RegistryEntry{
		{Node: "db", Ready: true, Address: "10.0.0.7:2528"},
		{Node: "end", Ready: true, Address: "h:1"},
		{Node: "game-1", Down: true},
		{Node: "waiting"},
	})
	want := []string{`db = "10.0.0.7:2528"`, `_ENV["end"] = "h:1"`, `_ENV["game-1"] = false`}
	got := strings.Split(strings.TrimSpace(lua), "\n")[1:]
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("clustername.lua lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// What the operator writes is what the sender's File registry reads: one
// format, checked from both ends.
func TestClusterConfigReadsBackInTheFileRegistry(t *testing.T) {
	entries := []RegistryEntry{
		{Node: "db", Ready: true, Address: "10.0.0.7:2528"},
		{Node: "end", Ready: true, Address: "[fd00::1]:1"},
		{Node: "game-1", Down: true},
		{Node: "waiting"},
	}
	cfg, err := registry.ParseClusterConfig([]byte(renderClusterConfig("ns", entries)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]registry.Entry{
		"db":     {Node: "db", State: registry.Ready, Address: "10.0.0.7:2528"},
		"end":    {Node: "end", State: registry.Ready, Address: "[fd00::1]:1"},
		"game-1": {Node: "game-1", State: registry.Down},
	}
	if len(cfg.Nodes) != len(want) {
		t.Fatalf("file registry read %v, want %v", cfg.Nodes, want)
	}
	for name, w := range want {
		got := cfg.Nodes[name]
		if got.State != w.State || got.Address != w.Address {
			t.Errorf("%s: file registry read %+v, want %+v", name, got, w)
		}
	}
}
