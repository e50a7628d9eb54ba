// Package interop tests skycall against real skynet processes on loopback:
// skycall's Client calling skynet nodes, skynet nodes calling skycall's
// Server, and both reading one cluster config written by the operator's
// code. skynet is built by hack/skynet.sh and run by test/skynetpeer; the
// Lua services the nodes run are in lua/. Without skynet the tests skip,
// saying how to enable them, unless CI=true or SKYCALL_REQUIRE_SKYNET=1.
package interop

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/skycall-io/skycall/internal/relay"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// timeout bounds every test's waits: generous, because the machine is
// shared, and never a claim about speed.
const timeout = 60 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// startSky starts a skynet node running lua/interop_main.lua (services
// echo, seq, fail, slow and driver, each as @name and .name). cfg may set
// Port (to restart on an old address) and Cluster.
func startSky(t *testing.T, name string, cfg skynetpeer.Config) *skynetpeer.Node {
	t.Helper()
	cfg.Name = name
	cfg.Start = "interop_main"
	cfg.LuaPath = []string{"lua"}
	return skynetpeer.Start(t, cfg)
}

// serviceHandle reads the handle the node logged for one of its services.
func serviceHandle(t *testing.T, n *skynetpeer.Node, service string) uint32 {
	t.Helper()
	m, err := n.WaitLog(testCtx(t), regexp.MustCompile(`skycall-interop service `+service+` :([0-9a-f]{8})`))
	if err != nil {
		t.Fatal(err)
	}
	h, err := strconv.ParseUint(m[1], 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(h)
}

func newClient(t *testing.T, reg registry.Registry, opts ...sender.Option) *sender.Client {
	t.Helper()
	opts = append([]sender.Option{sender.WithLogger(testr.New(t)), sender.WithBackoff(20*time.Millisecond, 300*time.Millisecond)}, opts...)
	c := sender.New(reg, opts...)
	t.Cleanup(func() { c.Close() })
	return c
}

// clientTo is a Client whose registry knows node at addr.
func clientTo(t *testing.T, node, addr string, opts ...sender.Option) *sender.Client {
	return newClient(t, registry.NewStatic(map[string]string{node: addr}), opts...)
}

// writeClusterConfig writes entries as the operator does (the registry
// ConfigMap's clustername.lua) to path.
func writeClusterConfig(t *testing.T, path string, entries []registry.Entry) {
	t.Helper()
	lua, _ := registry.FormatClusterConfig("interop", entries)
	// Replace atomically: skynet and registry.File may read it any time.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(lua), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s:\n%s", filepath.Base(path), lua)
}

// pattern is interop_echo's "make": n bytes, byte i = i % 251 (a prime, so
// that 32 KiB parts swapped or repeated would not compare equal).
func pattern(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return string(b)
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// eventually polls cond until it holds or the test's deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func seqInts(from, to int) []any {
	out := make([]any, 0, to-from+1)
	for i := from; i <= to; i++ {
		out = append(out, int64(i))
	}
	return out
}

func describe(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// ways are how a skynet node reaches another in these tests: directly (its
// cluster config holds the node's address), or through skycall-agent's
// relay (a loopback address of the relay, which forwards through a skycall
// Client). Every case that has skynet call out runs both ways.
var ways = []string{"direct", "relay"}

func eachWay(t *testing.T, f func(t *testing.T, way string)) {
	for _, way := range ways {
		t.Run(way, func(t *testing.T) { f(t, way) })
	}
}

// reach is the address a skynet config gives node at addr, by way: addr
// itself, or a relay's address that forwards to it.
func reach(t *testing.T, way, node, addr string) string {
	t.Helper()
	if way == "direct" {
		return addr
	}
	r := relay.New(clientTo(t, node, addr), relay.WithLogger(testr.New(t)))
	t.Cleanup(func() { r.Close() })
	a, err := r.Address(node)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
