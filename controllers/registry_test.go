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
	entries := make([]registry.Entry, 0, 10000)
	for i := 0; i < 10000; i++ {
		e := registry.Entry{Node: fmt.Sprintf("node-%05d", i), State: registry.Ready, Address: fmt.Sprintf("10.%d.%d.%d:2526", i>>16&255, i>>8&255, i&255)}
		if i%10 == 0 {
			e = registry.Entry{Node: e.Node, State: registry.Down}
		}
		entries = append(entries, e)
	}
	lua, omitted := registry.FormatClusterConfig("game", entries)
	if len(omitted) != 0 {
		t.Fatalf("left out %d nodes: %+v", len(omitted), omitted[0])
	}
	doc, err := registry.FormatNodesJSON(1<<40, entries)
	if err != nil {
		t.Fatal(err)
	}
	if size := len(lua) + len(doc); size > registry.ConfigMapMaxBytes {
		t.Fatalf("registry of 10,000 nodes is %d bytes, over the ConfigMap limit of %d", size, registry.ConfigMapMaxBytes)
	}
	if got := strings.Count(lua, "\n") - 1; got != 10000 {
		t.Errorf("clustername.lua has %d node lines, want 10000", got)
	}
}

// The generation written next is above the one replaced and above the
// resourceVersion it was read at, so that it stays above every generation
// published before even after the ConfigMap is gone (see nextGeneration).
func TestNextGenerationNeverGoesBackwards(t *testing.T) {
	for _, tc := range []struct {
		name     string
		previous int64
		rv       string
		want     int64
	}{
		{"first write after a list", 0, "4711", 4712},
		{"document behind its resourceVersion", 7, "4711", 4712},
		{"document at its resourceVersion", 4711, "4711", 4712},
		{"forged generation above the resourceVersion is not trusted", 1 << 50, "4711", 4712},
		{"no comparable resourceVersion: count on", 7, "", 8},
		{"opaque resourceVersion: count on", 7, "abc", 8},
	} {
		if got := nextGeneration(tc.previous, tc.rv); got != tc.want {
			t.Errorf("%s: nextGeneration(%d, %q) = %d, want %d", tc.name, tc.previous, tc.rv, got, tc.want)
		}
	}
}
