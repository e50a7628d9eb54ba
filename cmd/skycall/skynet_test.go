package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/test/skynetpeer"
)

// startSkynet starts a real skynet node running test/interop's services
// (echo, seq, fail, slow, cluster-registered as @name), or skips (fails
// under CI=true or SKYCALL_REQUIRE_SKYNET=1) when skynet cannot be had.
func startSkynet(t *testing.T) (*skynetpeer.Node, map[string]string) {
	t.Helper()
	n := skynetpeer.Start(t, skynetpeer.Config{
		Name: "sky", Start: "interop_main", LuaPath: []string{filepath.Join("..", "..", "test", "interop", "lua")},
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	handles := map[string]string{}
	for _, name := range []string{"echo", "seq"} {
		m, err := n.WaitLog(ctx, regexp.MustCompile(`skycall-interop service `+name+` (:[0-9a-f]{8})`))
		if err != nil {
			t.Fatal(err)
		}
		handles[name] = m[1]
	}
	return n, handles
}

// TestCommandsAgainstARealSkynetNode: the command line reaches skynet's own
// cluster agent, not only skycall Servers.
func TestCommandsAgainstARealSkynetNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real skynet node; not in -short")
	}
	n, handles := startSkynet(t)
	reg := "--registry=static:sky=" + n.Addr

	r := skycall(t, reg, "call", "sky", "@echo", "'hello'", "42", "{a=1, 2, t={true}}", "--", "-1.5").ok(t)
	if want := "\"hello\"\n42\n{2, a=1, t={true}}\n-1.5\n"; r.stdout != want {
		t.Fatalf("skynet echo printed\n%s\nwant\n%s", r.stdout, want)
	}
	r = skycall(t, reg, "call", "sky", "@echo", "'x', {k='v'}", "-o", "json").ok(t)
	if strings.Join(strings.Fields(r.stdout), "") != `["x",{"k":"v"}]` {
		t.Fatalf("skynet echo as JSON: %s", r.stdout)
	}

	// query gives the handle skynet logged; call by that handle works.
	r = skycall(t, reg, "query", "sky", "echo").ok(t)
	if r.stdout != handles["echo"]+"\n" {
		t.Fatalf("query echo printed %q, skynet logged %s", r.stdout, handles["echo"])
	}
	if r := skycall(t, reg, "call", "sky", handles["echo"], "'by handle'").ok(t); r.stdout != "\"by handle\"\n" {
		t.Fatalf("call by handle printed %q", r.stdout)
	}

	// Sends arrive, in order, before send returns its round trip.
	skycall(t, reg, "call", "sky", "@seq", "'reset'").ok(t)
	for i := range 3 {
		skycall(t, reg, "send", "sky", "@seq", fmt.Sprintf("'push', %d", i)).ok(t)
	}
	if r := skycall(t, reg, "call", "sky", "@seq", "'get'").ok(t); r.stdout != "{0, 1, 2}\n" {
		t.Fatalf("skynet recorded %q", r.stdout)
	}

	skycall(t, reg, "ping", "sky", "-c", "3", "-i", "0").ok(t)
	r = skycall(t, reg, "nodes", "-o", "json").ok(t)
	if !strings.Contains(r.stdout, `"connection": "ready"`) {
		t.Fatalf("nodes: %s", r.stdout)
	}
	r = skycall(t, reg, "bench", "sky", "@echo", "'x'", "--count", "300", "-c", "4").ok(t)
	if !strings.Contains(r.stdout, "Count:        300 (300 ok, 0 errors)") {
		t.Fatalf("bench: %s", r.stdout)
	}
	t.Logf("skycall bench against skynet:\n%s", r.stdout)
	skycall(t, reg, "bench", "sky", "@seq", "'push', 1", "--count", "300", "-c", "4", "--send").ok(t)
	if r := skycall(t, reg, "call", "sky", "@seq", "'count'").ok(t); r.stdout != "300\n" {
		t.Fatalf("after 300 benchmarked sends skynet recorded %q", r.stdout)
	}

	// The same node through a cluster config file, as skynet itself reads it.
	file := filepath.Join(t.TempDir(), "clustername.lua")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("sky = %q\n__nowaiting = true\n", n.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	skycall(t, "--registry=file:"+file, "ping", "sky", "-c", "1").ok(t)
	if r := skycall(t, "--registry=file:"+file, "call", "sky", "@echo", "'via file'").ok(t); r.stdout != "\"via file\"\n" {
		t.Fatalf("call through the file registry printed %q", r.stdout)
	}

	// skynet's own error texts, and the exit codes for them.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"call", "sky", "@fail", "'error', 'boom'"}, exitRemote, "call failed"},
		{[]string{"call", "sky", "@nosuch"}, exitRemote, "Invalid name"},
		{[]string{"send", "sky", "@nosuch", "1"}, exitRemote, "the node rejected the message"},
		{[]string{"query", "sky", "nosuch"}, exitRemote, "name not found"},
		{[]string{"call", "sky", "@slow", "'sleep', 500, 'late'", "--timeout", "300ms"}, exitTimeout, "the request was sent"},
	} {
		r := skycall(t, append([]string{reg}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d; stderr %q, want %q", tc.args, r.code, tc.code, r.stderr, tc.want)
		}
	}
}
