package skynetagent

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender/registry"
)

// TestOnlyTheAgentsTokenChangesTheConfig: a peer that reaches the skynet
// node's cluster port (any pod, without a NetworkPolicy) calls or pushes
// "reload" to point a node name at its own listener. Without the token the
// agent wrote inside the pod, skynet refuses every form of it and logs it,
// "status" tells the peer nothing, and the node keeps calling the real
// node. A rotated token takes effect at once and the old one stops working.
func TestOnlyTheAgentsTokenChangesTheConfig(t *testing.T) {
	real := goNode(t, "go_a")
	evil := goNode(t, "evil")
	sky := startSky(t, "sky1", 0, nil)
	agent := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))
	push(t, agent, sky, map[string]any{"go": real}, 1)

	peer := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))
	hijack := map[string]any{"go": evil}
	for _, meta := range []any{
		nil, // no meta at all
		map[string]any{"generation": 99, "hash": "x"},
		map[string]any{"generation": 99, "hash": "x", "token": ""},
		map[string]any{"generation": 99, "hash": "x", "token": strings.Repeat("0", 64)},
		map[string]any{"generation": 99, "hash": "x", "token": sky.Token[:63]},
		map[string]any{"generation": 99, "hash": "x", "token": 42},
	} {
		var got []any
		if meta == nil {
			got = reload(t, peer, sky, hijack, nil)
		} else {
			got = reload(t, peer, sky, hijack, meta)
		}
		if len(got) != 2 || got[0] != false || !strings.Contains(toString(got[1]), "only this pod's skycall-agent") {
			t.Errorf("reload from a peer with meta %v: %#v, want false and a refusal", meta, got)
		}
	}
	// A push has no reply: it must not be applied either.
	if err := peer.SendValues(testCtx(t), "sky1", "@skycall", "reload", hijack,
		map[string]any{"generation": 100, "hash": "y"}); err != nil {
		t.Fatal(err)
	}
	if got, err := peer.CallValues(testCtx(t), "sky1", "@skycall", "status"); err != nil || len(got) != 2 || got[0] != false {
		t.Errorf("status from a peer without the token: %#v, %v; want false and a refusal", got, err)
	}
	if _, err := sky.WaitLog(testCtx(t), regexp.MustCompile(`skycall: refused "reload" from :[0-9a-f]+: only this pod's skycall-agent may change the config`)); err != nil {
		t.Error(err)
	}
	if got := drive(t, agent, "sky1", "query", "go", "__skycall_node"); !equal(got, []any{true, "go_a"}) {
		t.Errorf("after the peer's reloads skynet's go is %#v, want the real go_a", got)
	}
	st := status(t, agent, sky)
	if st["generation"] != int64(1) || st["unauthorized"] != int64(8) || st["applied"] != int64(1) {
		t.Errorf("status after 7 refused reloads and 1 refused status: %v", st)
	}

	// Rotation: the agent writes a new token; the old one is refused.
	old := sky.Token
	sky.setToken(t, strings.Repeat("c3", 32))
	got := reload(t, agent, sky, map[string]any{"go": real}, map[string]any{"generation": 2, "hash": "h2", "token": old})
	if got[0] != false {
		t.Errorf("reload with the token before rotation: %#v, want a refusal", got)
	}
	if got := push(t, agent, sky, map[string]any{"go": real, "other": evil}, 2); !equal(got, []any{true, int64(2)}) {
		t.Errorf("reload with the rotated token: %#v, want [true 2]", got)
	}

	// A token file that is missing or too short refuses everyone.
	sky.setToken(t, "short")
	if got := reload(t, agent, sky, map[string]any{}, map[string]any{"generation": 3, "hash": "h3", "token": "short"}); got[0] != false ||
		!strings.Contains(toString(got[1]), "shorter than 32 bytes") {
		t.Errorf("reload while the token file holds a short token: %#v, want a refusal", got)
	}
}

// TestPushesWithoutATokenFileAreOff: a node started without
// skycall_token_file takes no pushes at all (poll mode still works).
func TestPushesWithoutATokenFileAreOff(t *testing.T) {
	sky := startSky(t, "sky1", 0, map[string]string{"skycall_token_file": ""})
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))
	got := reload(t, c, sky, map[string]any{"go": "127.0.0.1:9"}, map[string]any{"generation": 1, "hash": "h", "token": sky.Token})
	if len(got) != 2 || got[0] != false || !strings.Contains(toString(got[1]), "skycall_token_file") {
		t.Errorf("reload to a node without a token file: %#v, want a refusal naming skycall_token_file", got)
	}
	if _, err := sky.WaitLog(testCtx(t), regexp.MustCompile(`pushes off \(no skycall_token_file\)`)); err != nil {
		t.Error(err)
	}
}

// TestOlderOrMalformedGenerationsAreRefused: a reload whose generation is
// below the one in force (an old config that would undo a newer one), is
// not a positive integer, or whose hash is not a string, is refused and
// the config in force stays; the same generation and hash again is a
// no-op, and a newer generation applies.
func TestOlderOrMalformedGenerationsAreRefused(t *testing.T) {
	goA, goB := goNode(t, "go_a"), goNode(t, "go_b")
	sky := startSky(t, "sky1", 0, nil)
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))
	push(t, c, sky, map[string]any{"go": goA}, 5)

	moved := map[string]any{"go": goB}
	for _, b := range []struct {
		name   string
		meta   map[string]any
		reason string
	}{
		{"older generation", map[string]any{"generation": 4, "hash": "h4"}, "generation 4 is older than generation 5 in force"},
		{"same generation, other hash", map[string]any{"generation": 5, "hash": "other"}, "generation 5 is in force with another hash"},
		{"zero", map[string]any{"generation": 0, "hash": "h"}, "want an integer >= 1"},
		{"negative", map[string]any{"generation": -7, "hash": "h"}, "want an integer >= 1"},
		{"string", map[string]any{"generation": "9", "hash": "h"}, "meta.generation is a string"},
		{"float", map[string]any{"generation": 9.5, "hash": "h"}, "meta.generation is 9.5"},
		{"table", map[string]any{"generation": map[string]any{"n": 9}, "hash": "h"}, "meta.generation is a table"},
		{"missing", map[string]any{"hash": "h"}, "meta.generation is a nil"},
		{"hash a number", map[string]any{"generation": 9, "hash": 9}, "meta.hash is a number"},
		{"hash missing", map[string]any{"generation": 9}, "meta.hash is a nil"},
	} {
		b.meta["token"] = sky.Token
		got := reload(t, c, sky, moved, b.meta)
		if len(got) != 2 || got[0] != false || !strings.Contains(toString(got[1]), b.reason) {
			t.Errorf("%s: %#v, want false and %q", b.name, got, b.reason)
		}
	}
	if got := drive(t, c, "sky1", "query", "go", "__skycall_node"); !equal(got, []any{true, "go_a"}) {
		t.Errorf("after the refused reloads skynet's go is %#v, want go_a", got)
	}
	if st := status(t, c, sky); st["generation"] != int64(5) || st["hash"] != "h5" {
		t.Errorf("status after the refusals: %v, want generation 5, hash h5", st)
	}
	if got := push(t, c, sky, map[string]any{"go": goA}, 5); !equal(got, []any{true, int64(5)}) {
		t.Errorf("the config in force again: %#v, want [true 5]", got)
	}
	start := time.Now()
	if got := push(t, c, sky, moved, 6); !equal(got, []any{true, int64(6)}) {
		t.Fatalf("a newer generation: %#v, want [true 6]", got)
	}
	if got := drive(t, c, "sky1", "query", "go", "__skycall_node"); !equal(got, []any{true, "go_b"}) {
		t.Errorf("after generation 6 skynet's go is %#v, want go_b", got)
	}
	t.Logf("a newer generation applied and used in %v", time.Since(start))
}
