// Package skynetagent tests skycall's Lua service (lua/skycall) in real
// skynet nodes on loopback, and skycall-agent pushing to it: configs pushed
// over the cluster protocol or polled from a file, refused when bad, and the
// node confirmation that lets a skycall Client tell one skynet node (or
// process) from another. skynet is built by hack/skynet.sh and run by
// test/skynetpeer; without it the tests skip, saying how to enable them,
// unless CI=true or SKYCALL_REQUIRE_SKYNET=1.
package skynetagent

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// timeout bounds every wait: generous, because the machine is shared, and
// never a claim about speed.
const timeout = 60 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// startSky starts a skynet node named node running lua/agent_main.lua: the
// skycall service, @echo and @driver. env adds skynet config keys
// (skycall_incarnation, skycall_poll, ...); skycall_node is node.
func startSky(t *testing.T, node string, port int, env map[string]string) *skynetpeer.Node {
	t.Helper()
	cfg := skynetpeer.Config{
		Name:    node,
		Start:   "agent_main",
		LuaPath: []string{"lua", "../../lua/skycall", "../interop/lua"},
		Port:    port,
		Env:     map[string]string{"skycall_node": node},
	}
	for k, v := range env {
		cfg.Env[k] = v
	}
	return skynetpeer.Start(t, cfg)
}

func newClient(t *testing.T, reg registry.Registry) *sender.Client {
	t.Helper()
	c := sender.New(reg, sender.WithLogger(testr.New(t)), sender.WithBackoff(20*time.Millisecond, 300*time.Millisecond))
	t.Cleanup(func() { c.Close() })
	return c
}

// goNode is a skycall Server named name answering @echo.
func goNode(t *testing.T, name string) string { return sendertest.EchoNode(t, name) }

// push sends config to the skycall service of node, as skycall-agent does.
func push(t *testing.T, c *sender.Client, node string, config map[string]any, generation int) []any {
	t.Helper()
	got, err := c.CallValues(testCtx(t), node, "@skycall", "reload", config,
		map[string]any{"generation": generation, "hash": "h" + string(rune('0'+generation%10))})
	if err != nil {
		t.Fatalf("push generation %d to %s: %v", generation, node, err)
	}
	return got
}

// status asks node's skycall service for its status.
func status(t *testing.T, c *sender.Client, node string) map[any]any {
	t.Helper()
	got, err := c.CallValues(testCtx(t), node, "@skycall", "status")
	if err != nil {
		t.Fatalf("status of %s: %v", node, err)
	}
	m, ok := got[0].(map[any]any)
	if !ok {
		t.Fatalf("status of %s: %#v, want a table", node, got)
	}
	return m
}

// drive asks node's driver to act (cluster.call and so on); the reply
// starts with ok.
func drive(t *testing.T, c *sender.Client, node string, args ...any) []any {
	t.Helper()
	got, err := c.CallValues(testCtx(t), node, "@driver", args...)
	if err != nil {
		t.Fatalf("driver %v on %s: %v", args, node, err)
	}
	return got
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func equal(a, b any) bool { return reflect.DeepEqual(a, b) }
