package interop

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// TestOneClusterConfigServesSkynetAndGo loads the clustername.lua the
// operator writes into a skynet node (its cluster config, re-read by
// cluster.reload) and into registry.NewFile, and checks that both sides
// agree on every kind of entry: ready, down, not ready (no line: callers
// wait until a rewrite names it), and names that are not Lua identifiers.
func TestOneClusterConfigServesSkynetAndGo(t *testing.T) {
	goA := startGoNode(t, "go-node.1")
	goB := startGoNode(t, "gone")
	goC := startGoNode(t, "later")
	skyPort, err := skynetpeer.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	skyAddr := "127.0.0.1:" + strconv.Itoa(skyPort)
	path := filepath.Join(t.TempDir(), "clustername.lua")
	writeClusterConfig(t, path, []registry.Entry{
		{Node: "sky-1", State: registry.Ready, Address: skyAddr},
		{Node: "go-node.1", State: registry.Ready, Address: goA.addr},
		{Node: "gone", State: registry.Down},
		{Node: "later", State: registry.NotReady}, // not ready: no line
	})
	sky := startSky(t, "sky-1", skynetpeer.Config{Port: skyPort, Cluster: path})

	reg, err := registry.NewFile(path, registry.FilePollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	c := newClient(t, reg)
	ctx := testCtx(t)

	// Go side: the file's names, the skynet node among them.
	if got, err := c.CallValues(ctx, "sky-1", "@echo", "from go"); err != nil || !reflect.DeepEqual(got, []any{"from go"}) {
		t.Fatalf("Go -> sky-1 through the file registry: %v, %v", got, err)
	}
	if _, err := c.CallValues(ctx, "gone", "@echo", "x"); !errors.Is(err, sender.ErrNodeDown) {
		t.Errorf("Go -> gone (false in the file): %v, want ErrNodeDown", err)
	}
	if e, _ := reg.Lookup("later"); e.State != registry.Absent {
		t.Errorf("later (no line) is %v in the file registry, want Absent", e.State)
	}

	// skynet side, driven through sky-1's driver: the same file.
	driveSky := func(args ...any) []any {
		t.Helper()
		got, err := c.CallValues(ctx, "sky-1", "@driver", args...)
		if err != nil {
			t.Fatalf("driver %v: %v", args, err)
		}
		return got
	}
	if got := driveSky("call", "go-node.1", "@echo", "from skynet"); !reflect.DeepEqual(got, []any{true, "from skynet"}) {
		t.Errorf("skynet -> go-node.1: %v", got)
	}
	// skynet fails a call to a node that is false at once, though with an
	// unhelpful text: clusterd hands cluster.call a nil sender.
	got := driveSky("call", "gone", "@echo", "x")
	if want := []any{false, "./lualib/skynet.lua:150: dest address type (nil) must be a string or number."}; !reflect.DeepEqual(got, want) {
		t.Errorf("skynet -> gone (false in the file): %v, want %v", got, want)
	}

	// A node with no line yet: callers on both sides wait for it.
	skyWaits := make(chan []any, 1)
	go func() {
		got, err := c.CallValues(ctx, "sky-1", "@driver", "call", "later", "@echo", "waited")
		if err != nil {
			got = []any{err.Error()}
		}
		skyWaits <- got
	}()
	goWaits := make(chan error, 1)
	go func() {
		got, err := c.CallValues(ctx, "later", "@echo", "waited")
		if err == nil && !reflect.DeepEqual(got, []any{"waited"}) {
			err = fmt.Errorf("later answered %v", got)
		}
		goWaits <- err
	}()
	if _, err := sky.WaitLog(ctx, regexp.MustCompile(`Waiting for cluster node \[later\]`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Go Client waits for later", func() bool { return c.State("later") == sender.StateResolving })

	// The operator rewrites the file: gone comes up at goB, later at goC.
	// skynet sees it after cluster.reload, the File registry by itself.
	writeClusterConfig(t, path, []registry.Entry{
		{Node: "sky-1", State: registry.Ready, Address: skyAddr},
		{Node: "go-node.1", State: registry.Ready, Address: goA.addr},
		{Node: "gone", State: registry.Ready, Address: goB.addr},
		{Node: "later", State: registry.Ready, Address: goC.addr},
	})
	start := time.Now()
	if got := driveSky("reload"); !reflect.DeepEqual(got, []any{true}) {
		t.Fatalf("cluster.reload: %v", got)
	}
	if got := <-skyWaits; !reflect.DeepEqual(got, []any{true, "waited"}) {
		t.Errorf("skynet's waiting call to later, after reload: %v", got)
	}
	if err := <-goWaits; err != nil {
		t.Errorf("Go's waiting call to later: %v", err)
	}
	t.Logf("both waiting calls answered %v after the rewrite", time.Since(start))
	if got := driveSky("call", "gone", "@echo", "back"); !reflect.DeepEqual(got, []any{true, "back"}) {
		t.Errorf("skynet -> gone after reload: %v", got)
	}
	eventually(t, "the Go Client reaches gone once the file says where it is", func() bool {
		got, err := c.CallValues(ctx, "gone", "@echo", "back")
		return err == nil && reflect.DeepEqual(got, []any{"back"})
	})
}
