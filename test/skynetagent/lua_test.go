package skynetagent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// TestPushedConfigIsAppliedAndSkynetCallsTheNodeItLearned pushes a cluster
// config to a skynet node that started with none, then has that node
// cluster.call a Go node it knows only from the push, and a second push
// moves the name to another node.
func TestPushedConfigIsAppliedAndSkynetCallsTheNodeItLearned(t *testing.T) {
	goA := goNode(t, "go_a")
	goB := goNode(t, "go_b")
	sky := startSky(t, "sky1", 0, nil)
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))

	if got := push(t, c, sky, map[string]any{"go": goA, "gone": false, "__nowaiting": true}, 1); !equal(got, []any{true, int64(1)}) {
		t.Fatalf("push: %#v, want [true 1]", got)
	}
	if got := drive(t, c, "sky1", "call", "go", "@echo", "from skynet"); !equal(got, []any{true, "from skynet"}) {
		t.Fatalf("skynet -> go after the push: %#v", got)
	}
	st := status(t, c, sky)
	if st["generation"] != int64(1) || st["hash"] != "h1" || st["source"] != "push" || st["node"] != "sky1" {
		t.Errorf("status after one push: %v", st)
	}

	// The same name at another address: skynet reconnects there. (go_b
	// answers any payload: the echo proves which node got it only through
	// the address, so ask the node's name from the confirmation instead.)
	push(t, c, sky, map[string]any{"go": goB}, 2)
	if got := drive(t, c, "sky1", "call", "go", "@echo", "again"); !equal(got, []any{true, "again"}) {
		t.Fatalf("skynet -> go after the second push: %#v", got)
	}
	if got := drive(t, c, "sky1", "query", "go", "__skycall_node"); !equal(got, []any{true, "go_b"}) {
		t.Errorf("skynet's query of go after the move answered %#v, want go_b's name", got)
	}
}

// TestBadConfigIsRefusedAndThePreviousKept pushes configs skynet must not
// load: each is refused with its reason (to the caller and in skynet's
// log), and the config in force before keeps working.
func TestBadConfigIsRefusedAndThePreviousKept(t *testing.T) {
	goA := goNode(t, "go_a")
	sky := startSky(t, "sky1", 0, nil)
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))
	push(t, c, sky, map[string]any{"go": goA}, 1)

	bad := []struct {
		name   string
		config any
		reason string
	}{
		{"address without port", map[string]any{"go": "127.0.0.1", "other": "127.0.0.1:9"}, `address "127.0.0.1" is not host:port`},
		{"port out of range", map[string]any{"go": "127.0.0.1:70000"}, "invalid port"},
		{"bad IPv4", map[string]any{"go": "300.1.1.1:9"}, "invalid IPv4"},
		{"host with spaces", map[string]any{"go": "a b:9"}, "not an IPv4 address, a DNS name"},
		{"value true", map[string]any{"go": true}, `want "host:port" or false`},
		{"unknown option", map[string]any{"__nowating": true}, `unknown cluster option "__nowating"`},
		{"option of the wrong type", map[string]any{"__nowaiting": "yes"}, "want a boolean"},
		{"keyword as a name", map[string]any{"end": "127.0.0.1:9"}, "is reserved"},
		{"name with a quote", map[string]any{`a"b`: "127.0.0.1:9"}, "has characters other than"},
		{"number key", map[int64]any{1: "127.0.0.1:9"}, "want a node name"},
		{"not a table", "go = 1", "want a table"},
	}
	for i, b := range bad {
		got := reload(t, c, sky, b.config, map[string]any{"generation": 100 + i, "hash": "bad" + strconv.Itoa(i), "token": sky.Token})
		if len(got) != 2 || got[0] != false || !strings.Contains(toString(got[1]), b.reason) {
			t.Errorf("%s: reply %#v, want false and a reason containing %q", b.name, got, b.reason)
		}
	}
	if _, err := sky.WaitLog(testCtx(t), regexp.MustCompile(`skycall: refused the cluster config from push, the previous one stays in force: .*is not host:port`)); err != nil {
		t.Error(err)
	}
	// Nothing of the refused configs was applied: "other" (valid, beside a
	// bad entry) is unknown, "go" still works, generation still 1.
	if got := drive(t, c, "sky1", "call", "go", "@echo", "still"); !equal(got, []any{true, "still"}) {
		t.Errorf("skynet -> go after the refusals: %#v", got)
	}
	st := status(t, c, sky)
	if st["generation"] != int64(1) || st["refused"] != int64(len(bad)) {
		t.Errorf("status after %d refusals: %v", len(bad), st)
	}
	// An unknown command is an answer too, and the node lives on.
	if got, err := c.CallValues(testCtx(t), "sky1", "@skycall", "explode"); err != nil || got[0] != false {
		t.Errorf("unknown command: %#v, %v", got, err)
	}
	if got := drive(t, c, "sky1", "call", "go", "@echo", "alive"); !equal(got, []any{true, "alive"}) {
		t.Errorf("skynet -> go after an unknown command: %#v", got)
	}
}

// TestNodeLeavingTheConfigIsSetDown: skynet cannot forget an address, so a
// node missing from a pushed config is set to false; its callers fail at
// once instead of reaching whatever now listens at its old address.
func TestNodeLeavingTheConfigIsSetDown(t *testing.T) {
	goA := goNode(t, "go_a")
	sky := startSky(t, "sky1", 0, nil)
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))
	push(t, c, sky, map[string]any{"go": goA}, 1)
	if got := drive(t, c, "sky1", "call", "go", "@echo", "x"); !equal(got, []any{true, "x"}) {
		t.Fatalf("skynet -> go: %#v", got)
	}
	push(t, c, sky, map[string]any{}, 2)
	if got := drive(t, c, "sky1", "call", "go", "@echo", "x"); got[0] != false {
		t.Errorf("skynet -> go after go left the config: %#v, want a failure", got)
	}
}

// TestConfirmationTellsSkynetNodesApart: a Client whose registry points a
// name at a skynet node of another name, or names another incarnation of
// it, gets the wrong-node error; the right name and incarnation connect.
func TestConfirmationTellsSkynetNodesApart(t *testing.T) {
	sky := startSky(t, "sky1", 0, map[string]string{"skycall_incarnation": "uid-1"})

	wrongName := newClient(t, registry.NewStatic(map[string]string{"sky2": sky.Addr}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := wrongName.CallValues(ctx, "sky2", "@echo", "x")
	if !errors.Is(err, sender.ErrWrongNode) || !strings.Contains(err.Error(), `answered as node "sky1"`) {
		t.Errorf("call to sky2 at sky1's address: %v, want ErrWrongNode naming sky1", err)
	}

	reg := registry.NewStatic(nil)
	reg.SetIncarnation("sky1", sky.Addr, "uid-0")
	wrongInc := newClient(t, reg)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	_, err = wrongInc.CallValues(ctx2, "sky1", "@echo", "x")
	if !errors.Is(err, sender.ErrWrongNode) || !strings.Contains(err.Error(), `incarnation "uid-1"`) {
		t.Errorf("call to sky1 expecting incarnation uid-0: %v, want ErrWrongNode naming uid-1", err)
	}

	// The registry catches up: the same Client connects.
	reg.SetIncarnation("sky1", sky.Addr, "uid-1")
	if got, err := wrongInc.CallValues(testCtx(t), "sky1", "@echo", "x"); err != nil || !equal(got, []any{"x"}) {
		t.Errorf("call to sky1 with its incarnation: %#v, %v", got, err)
	}
}

// TestPollModeFollowsTheMountedFile: a node told to poll a clustername.lua
// (the registry ConfigMap, mounted) applies each new content, refuses a
// bad one keeping the previous, and picks up the next good one.
func TestPollModeFollowsTheMountedFile(t *testing.T) {
	goA := goNode(t, "go_a")
	goB := goNode(t, "go_b")
	path := filepath.Join(t.TempDir(), "clustername.lua")
	write := func(content string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	lua, _ := registry.FormatClusterConfig("skynetagent", []registry.Entry{{Node: "go", State: registry.Ready, Address: goA}})
	write(lua)
	sky := startSky(t, "sky1", 0, map[string]string{"skycall_poll": path, "skycall_poll_interval": "0.1"})
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))

	eventually(t, "skynet calls go_a from the polled file", func() bool {
		return equal(drive(t, c, "sky1", "call", "go", "@echo", "a"), []any{true, "a"})
	})

	write("go = \"127.0.0.1\"\n") // no port: refused
	if _, err := sky.WaitLog(testCtx(t), regexp.MustCompile(`refused the cluster config from .*clustername.lua.*is not host:port`)); err != nil {
		t.Fatal(err)
	}
	write("go = = broken\n") // not Lua: refused
	if _, err := sky.WaitLog(testCtx(t), regexp.MustCompile(`refused .*clustername.lua, the previous config stays in force`)); err != nil {
		t.Fatal(err)
	}
	if got := drive(t, c, "sky1", "call", "go", "@echo", "kept"); !equal(got, []any{true, "kept"}) {
		t.Errorf("skynet -> go after bad files: %#v", got)
	}

	lua, _ = registry.FormatClusterConfig("skynetagent", []registry.Entry{{Node: "go", State: registry.Ready, Address: goB}})
	write(lua)
	eventually(t, "skynet follows the file to go_b", func() bool {
		return equal(drive(t, c, "sky1", "query", "go", "__skycall_node"), []any{true, "go_b"})
	})
}

func toString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	}
	return ""
}

// TestReservedNameHeldByAnotherServiceStillConnects: a skynet node whose
// __skycall_node is some other service (it raises when called) is still a
// skynet peer: the Client checks it by address only, as a plain skynet
// node, and calls go through.
func TestReservedNameHeldByAnotherServiceStillConnects(t *testing.T) {
	sky := skynetpeer.Start(t, skynetpeer.Config{
		Name: "sky1", Start: "reserved_main",
		LuaPath: []string{"lua", "../interop/lua"},
	})
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))
	if got, err := c.CallValues(testCtx(t), "sky1", "@echo", "x"); err != nil || !equal(got, []any{"x"}) {
		t.Fatalf("call to a skynet node whose reserved name answers an error: %#v, %v", got, err)
	}
}
