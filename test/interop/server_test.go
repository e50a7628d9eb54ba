package interop

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// goNode is a skycall Server on loopback with services for skynet to call:
//
//	@echo     replies with the payload it got
//	.echo     the same, under a local name
//	@seq      "push", i records i; "count" replies how many; "get" the list
//	@fail     replies with the error "go handler failed: <arg>"
//	@pattern  replies with the payload if it is one string equal to
//	          pattern(len), else with an error saying how it differs
type goNode struct {
	name       string
	srv        *server.Server
	addr       string
	echoHandle uint32

	mu      sync.Mutex
	pushes  []any
	pushAt  []time.Time // first and last push
	pattern []int       // sizes of verified pattern strings
}

func startGoNode(t *testing.T, name string) *goNode {
	t.Helper()
	g := &goNode{name: name, srv: server.New(name)}
	echo := func(_ context.Context, req *server.Request) ([]byte, error) { return req.Payload, nil }
	var err error
	if g.echoHandle, err = g.srv.HandleFunc("@echo", echo); err != nil {
		t.Fatal(err)
	}
	must := func(_ uint32, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(g.srv.HandleFunc(".echo", echo))
	must(g.srv.HandleFunc("@seq", func(_ context.Context, req *server.Request) ([]byte, error) {
		args, err := luaseri.Unpack(req.Payload)
		if err != nil || len(args) == 0 {
			return nil, fmt.Errorf("seq: bad message %v (%v)", args, err)
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		switch args[0] {
		case "push":
			if len(args) != 2 {
				return nil, fmt.Errorf("seq: push wants one value, got %v", args)
			}
			now := time.Now()
			if len(g.pushes) == 0 {
				g.pushAt = []time.Time{now, now}
			}
			g.pushAt[1] = now
			g.pushes = append(g.pushes, args[1])
			return nil, nil
		case "count":
			return luaseri.Pack(len(g.pushes))
		}
		return nil, fmt.Errorf("seq: unknown command %v", args[0])
	}))
	must(g.srv.HandleFunc("@fail", func(_ context.Context, req *server.Request) ([]byte, error) {
		args, _ := luaseri.Unpack(req.Payload)
		return nil, fmt.Errorf("go handler failed: %v", args)
	}))
	must(g.srv.HandleFunc("@pattern", func(_ context.Context, req *server.Request) ([]byte, error) {
		args, err := luaseri.Unpack(req.Payload)
		if err != nil || len(args) != 1 {
			return nil, fmt.Errorf("pattern: want one string, got %d values (%v)", len(args), err)
		}
		s, _ := args[0].(string)
		if want := pattern(len(s)); s != want {
			for i := range s {
				if s[i] != want[i] {
					return nil, fmt.Errorf("pattern: %d bytes, first difference at byte %d", len(s), i)
				}
			}
		}
		g.mu.Lock()
		g.pattern = append(g.pattern, len(s))
		g.mu.Unlock()
		return req.Payload, nil
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = l.Addr().String()
	go g.srv.Serve(l)
	t.Cleanup(func() { g.srv.Close() })
	return g
}

func (g *goNode) pushed() []any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]any(nil), g.pushes...)
}

// skyCalling starts a skynet node whose cluster config (written by the
// operator's code) has the Go node as "go", reached by way (direct or
// through the relay), and a Client that drives it.
func skyCalling(t *testing.T, g *goNode, way string) (*skynetpeer.Node, *sender.Client) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clustername.lua")
	writeClusterConfig(t, path, []registry.Entry{{Node: "go", State: registry.Ready, Address: reach(t, way, "go", g.addr)}})
	n := startSky(t, "sky", skynetpeer.Config{Cluster: path})
	return n, clientTo(t, "sky", n.Addr)
}

// drive asks the skynet node's driver to act; the reply starts with ok.
func drive(t *testing.T, c *sender.Client, args ...any) []any {
	t.Helper()
	got, err := c.CallValues(testCtx(t), "sky", "@driver", args...)
	if err != nil {
		t.Fatalf("driver %v: %v", args[0], err)
	}
	return got
}

func TestSkynetCallsSendsQueriesAndProxiesGoServices(t *testing.T) {
	eachWay(t, func(t *testing.T, way string) {
		g := startGoNode(t, "go")
		_, c := skyCalling(t, g, way)

		t.Run("cluster.call values round trip", func(t *testing.T) {
			for _, tc := range valueCases {
				want := tc.want
				if want == nil {
					want = tc.send
				}
				args := append([]any{"call", "go", "@echo"}, tc.send...)
				got := drive(t, c, args...)
				if want = append([]any{true}, want...); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: skynet got back\n  %s\nwant\n  %s", tc.name, describe(got), describe(want))
				}
			}
		})
		t.Run("cluster.call by local name and handle", func(t *testing.T) {
			for _, addr := range []any{".echo", int64(g.echoHandle), fmt.Sprintf(":%08x", g.echoHandle)} {
				if got := drive(t, c, "call", "go", addr, "hi", int64(1)); !reflect.DeepEqual(got, []any{true, "hi", int64(1)}) {
					t.Errorf("call to %v: %v", addr, got)
				}
			}
		})
		t.Run("cluster.query", func(t *testing.T) {
			if got := drive(t, c, "query", "go", "echo"); !reflect.DeepEqual(got, []any{true, int64(g.echoHandle)}) {
				t.Errorf("query echo: %v, want [true %d]", got, g.echoHandle)
			}
			got := drive(t, c, "query", "go", "nosuch")
			if len(got) != 2 || got[0] != false {
				t.Errorf("query of a missing name: %v, want it to fail", got)
			}
			t.Logf("skynet's cluster.query of a name the Go node lacks: %v", got)
		})
		t.Run("cluster.proxy", func(t *testing.T) {
			if got := drive(t, c, "proxy", "go", "@echo", "via", "proxy"); !reflect.DeepEqual(got, []any{true, "via", "proxy"}) {
				t.Errorf("call through a proxy: %v", got)
			}
		})
		t.Run("cluster.send and a send through a proxy", func(t *testing.T) {
			drive(t, c, "send", "go", "@seq", "push", "sent")
			drive(t, c, "proxysend", "go", "@seq", "push", "proxied")
			eventually(t, "both pushes reach the Go service", func() bool { return len(g.pushed()) == 2 })
			if got := g.pushed(); !reflect.DeepEqual(got, []any{"sent", "proxied"}) {
				t.Errorf("Go received %v", got)
			}
		})
		t.Run("an unknown Go service", func(t *testing.T) {
			got := drive(t, c, "call", "go", "@nosuch")
			if len(got) != 2 || got[0] != false {
				t.Fatalf("call to an unknown service: %v, want it to fail", got)
			}
			t.Logf("skynet's caller sees %q", got[1])
		})
	})
}

func TestGoHandlerErrorAsSkynetsCallerSeesIt(t *testing.T) {
	eachWay(t, func(t *testing.T, way string) {
		g := startGoNode(t, "go")
		n, c := skyCalling(t, g, way)
		got := drive(t, c, "call", "go", "@fail", "boom")
		// skynet's clustersender turns any error reply into "call failed" for
		// its caller and logs the remote text.
		want := []any{false, "./lualib/skynet.lua:720: call failed"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("skynet's pcall(cluster.call) returned %v, want %v", got, want)
		}
		if _, err := n.WaitLog(testCtx(t), regexp.MustCompile(`go handler failed: \[boom\]`)); err != nil {
			t.Errorf("the Go handler's error text is not in skynet's log: %v", err)
		}
	})
}

func TestLargePayloadsFromSkynetToGoAreByteExactBothWays(t *testing.T) {
	eachWay(t, func(t *testing.T, way string) {
		g := startGoNode(t, "go")
		_, c := skyCalling(t, g, way)
		for _, size := range []int{32<<10 + 1, 1 << 20} {
			start := time.Now()
			got := drive(t, c, "big", "go", "@pattern", size)
			want := []any{true, int64(size), true, md5hex(pattern(size))}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%d bytes: skynet's driver reported %v, want %v", size, describe(got), want)
			}
			t.Logf("skynet -> Go -> skynet %d B string: %v", size, time.Since(start))
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if !reflect.DeepEqual(g.pattern, []int{32<<10 + 1, 1 << 20}) {
			t.Errorf("the Go service verified %v, want both sizes", g.pattern)
		}
	})
}

func TestTenThousandPushesFromSkynetArriveInOrder(t *testing.T) {
	eachWay(t, func(t *testing.T, way string) {
		const total = 10000
		g := startGoNode(t, "go")
		_, c := skyCalling(t, g, way)
		start := time.Now()
		if got := drive(t, c, "pushmany", "go", "@seq", total); !reflect.DeepEqual(got, []any{true, int64(total)}) {
			t.Fatalf("driver: %v", got)
		}
		eventually(t, fmt.Sprintf("%d pushes reach the Go service", total), func() bool { return len(g.pushed()) >= total })
		got := g.pushed()
		if len(got) != total {
			t.Fatalf("Go received %d pushes, want %d", len(got), total)
		}
		for i, v := range got {
			if v != int64(i+1) {
				t.Fatalf("push %d arrived as %v: order broken", i+1, v)
			}
		}
		g.mu.Lock()
		span := g.pushAt[1].Sub(g.pushAt[0])
		g.mu.Unlock()
		t.Logf("%d pushes: %v from the driver's start to the last arrival, %v between first and last arrival", total, time.Since(start), span)
	})
}

// skynet writes a multipart push (over 32 KiB) at low priority, so a small
// push sent right after it may arrive first (PROTOCOL.md). The Server must
// reassemble the parts by session whatever comes between them.
func TestSkynetsLargePushMayBeOvertakenYetArrivesWhole(t *testing.T) {
	eachWay(t, func(t *testing.T, way string) {
		g := startGoNode(t, "go")
		type got struct {
			size    int
			session uint32
		}
		var mu sync.Mutex
		var arrived []got
		if _, err := g.srv.HandleFunc("@rec", func(_ context.Context, req *server.Request) ([]byte, error) {
			args, err := luaseri.Unpack(req.Payload)
			if err != nil || len(args) != 1 {
				return nil, fmt.Errorf("rec: want one string (%v)", err)
			}
			s, _ := args[0].(string)
			if len(s) > 1 && s != pattern(len(s)) {
				return nil, fmt.Errorf("rec: %d bytes, not the pattern", len(s))
			}
			mu.Lock()
			arrived = append(arrived, got{len(s), req.Session})
			mu.Unlock()
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		_, c := skyCalling(t, g, way)
		sizes := []int{32<<10 + 1, 1 << 20}
		for _, size := range sizes {
			// The driver makes the big string with the pattern itself.
			big, err := c.CallValues(testCtx(t), "sky", "@echo", "make", size)
			if err != nil {
				t.Fatal(err)
			}
			drive(t, c, "sendtwo", "go", "@rec", big[0], "s")
		}
		eventually(t, "every push reaches the Go service", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(arrived) == 2*len(sizes)
		})
		mu.Lock()
		defer mu.Unlock()
		overtaken := 0
		for i := 0; i < len(arrived); i += 2 {
			if arrived[i].size == 1 {
				overtaken++
			}
		}
		for _, a := range arrived {
			if a.size > 1 && a.session == 0 {
				t.Errorf("a multipart push of %d bytes carried session 0", a.size)
			}
		}
		t.Logf("arrivals (size, session): %v; the small push overtook the large one %d of %d times", arrived, overtaken, len(sizes))
	})
}
