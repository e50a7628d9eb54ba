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
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
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

// sky is a skynet node running skycall's Lua service, and the token its
// agent would hold.
type sky struct {
	*skynetpeer.Node
	Name      string // skycall_node
	TokenPath string // skycall_token_file
	Token     string // what the file holds
}

// startSky starts a skynet node named node running lua/agent_main.lua: the
// skycall service, @echo and @driver. env adds skynet config keys
// (skycall_incarnation, skycall_poll, ...); skycall_node is node, and
// skycall_token_file a file holding a fresh token, as the agent writes it.
func startSky(t *testing.T, node string, port int, env map[string]string) *sky {
	t.Helper()
	s := &sky{Name: node, TokenPath: filepath.Join(t.TempDir(), "token")}
	s.setToken(t, strings.Repeat("5a", 32))
	cfg := skynetpeer.Config{
		Name:    node,
		Start:   "agent_main",
		LuaPath: []string{"lua", "../../lua/skycall", "../interop/lua"},
		Port:    port,
		Env:     map[string]string{"skycall_node": node, "skycall_token_file": s.TokenPath},
	}
	for k, v := range env {
		cfg.Env[k] = v
	}
	s.Node = skynetpeer.Start(t, cfg)
	return s
}

// setToken writes token to the node's token file, as the agent does when
// it starts or rotates.
func (s *sky) setToken(t *testing.T, token string) {
	t.Helper()
	tmp := s.TokenPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.TokenPath); err != nil {
		t.Fatal(err)
	}
	s.Token = token
}

func newClient(t *testing.T, reg registry.Registry) *sender.Client {
	t.Helper()
	c := sender.New(reg, sender.WithLogger(testr.New(t)), sender.WithBackoff(20*time.Millisecond, 300*time.Millisecond))
	t.Cleanup(func() { c.Close() })
	return c
}

// goNode is a skycall Server named name answering @echo.
func goNode(t *testing.T, name string) string { return sendertest.EchoNode(t, name) }

// push sends config to the skycall service of node s, with its token, as
// skycall-agent does.
func push(t *testing.T, c *sender.Client, s *sky, config map[string]any, generation int) []any {
	t.Helper()
	return reload(t, c, s, config, map[string]any{"generation": generation, "hash": "h" + strconv.Itoa(generation), "token": s.Token})
}

// reload calls "reload" on node s's skycall service with config and meta
// as given.
func reload(t *testing.T, c *sender.Client, s *sky, config, meta any) []any {
	t.Helper()
	got, err := c.CallValues(testCtx(t), s.Name, "@skycall", "reload", config, meta)
	if err != nil {
		t.Fatalf("reload %v on %s: %v", meta, s.Name, err)
	}
	return got
}

// status asks node s's skycall service for its status, with its token.
func status(t *testing.T, c *sender.Client, s *sky) map[any]any {
	t.Helper()
	got, err := c.CallValues(testCtx(t), s.Name, "@skycall", "status", map[string]any{"token": s.Token})
	if err != nil {
		t.Fatalf("status of %s: %v", s.Name, err)
	}
	m, ok := got[0].(map[any]any)
	if !ok {
		t.Fatalf("status of %s: %#v, want a table", s.Name, got)
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
