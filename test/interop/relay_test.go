package interop

import (
	"path/filepath"
	"reflect"
	"regexp"
	"testing"

	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// TestSkynetCallsSkynetAlsoThroughTheRelay: a skynet node calls, pushes to
// and queries another real skynet node, directly and through the relay;
// what its caller sees is the same both ways: values, payloads to 10 MiB
// byte for byte, errors, and the order of 2,000 pushes with a call behind
// them.
func TestSkynetCallsSkynetAlsoThroughTheRelay(t *testing.T) {
	target := startSky(t, "sky2", skynetpeer.Config{})
	echo := serviceHandle(t, target, "echo")
	eachWay(t, func(t *testing.T, way string) {
		path := filepath.Join(t.TempDir(), "clustername.lua")
		writeClusterConfig(t, path, []registry.Entry{{Node: "sky2", State: registry.Ready, Address: reach(t, way, "sky2", target.Addr)}})
		caller := startSky(t, "sky", skynetpeer.Config{Cluster: path})
		c := clientTo(t, "sky", caller.Addr)

		for _, tc := range valueCases {
			want := tc.want
			if want == nil {
				want = tc.send
			}
			got := drive(t, c, append([]any{"call", "sky2", "@echo"}, tc.send...)...)
			if want = append([]any{true}, want...); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: skynet got back\n  %s\nwant\n  %s", tc.name, describe(got), describe(want))
			}
		}
		for _, addr := range []any{".echo", int64(echo)} {
			if got := drive(t, c, "call", "sky2", addr, "hi"); !reflect.DeepEqual(got, []any{true, "hi"}) {
				t.Errorf("call to %v: %v", addr, got)
			}
		}
		if got := drive(t, c, "query", "sky2", "echo"); !reflect.DeepEqual(got, []any{true, int64(echo)}) {
			t.Errorf("query echo: %v, want [true %d]", got, echo)
		}
		for _, size := range []int{32<<10 + 1, 10 << 20} {
			got := drive(t, c, "big", "sky2", "@echo", size)
			if want := []any{true, int64(size), true, md5hex(pattern(size))}; !reflect.DeepEqual(got, want) {
				t.Errorf("%d bytes: %v, want %v", size, describe(got), want)
			}
		}
		// A failing service and an unknown one: skynet's caller sees the same
		// "call failed" either way, and the remote text reaches its log.
		if got := drive(t, c, "call", "sky2", "@fail", "boom"); len(got) != 2 || got[0] != false {
			t.Errorf("call to a failing service: %v, want a failure", got)
		}
		if got := drive(t, c, "call", "sky2", "@nosuch"); len(got) != 2 || got[0] != false {
			t.Errorf("call to an unknown service: %v, want a failure", got)
		}
		if _, err := caller.WaitLog(testCtx(t), regexp.MustCompile(`Invalid name`)); err != nil {
			t.Errorf("skynet's log lacks the remote text \"Invalid name\": %v", err)
		}
		const pushes = 2000
		drive(t, c, "call", "sky2", "@seq", "reset")
		drive(t, c, "pushmany", "sky2", "@seq", pushes)
		got := drive(t, c, "call", "sky2", "@seq", "get")
		if len(got) == 0 || got[0] != true {
			t.Fatalf("seq get: %v", got)
		}
		checkSeq(t, got[1:], 1, pushes)
	})
}
