package interop

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// valueCases are the Lua values of luaseri's mapping, each with what comes
// back after skynet unpacked it into Lua and packed it again.
var valueCases = []struct {
	name string
	send []any
	want []any // nil: the same as send
}{
	{"nil", []any{nil}, nil},
	{"nil between values", []any{int64(1), nil, int64(3)}, nil},
	{"booleans", []any{true, false}, nil},
	{"zero", []any{int64(0)}, nil},
	{"byte boundaries", []any{int64(1), int64(255), int64(256), int64(65535), int64(65536)}, nil},
	{"negative and int32 bounds", []any{int64(-1), int64(math.MaxInt32), int64(math.MinInt32)}, nil},
	{"int64", []any{int64(math.MaxInt32) + 1, -(int64(1) << 40), int64(math.MaxInt64), int64(math.MinInt64)}, nil},
	{"floats", []any{1.5, 1.0, -0.25, math.Inf(1), math.SmallestNonzeroFloat64}, nil},
	{"short strings", []any{"", "abc", strings.Repeat("x", 31)}, nil},
	{"long strings", []any{strings.Repeat("y", 32), strings.Repeat("ab", 20000), strings.Repeat("z", 70000)}, nil},
	{"binary string", []any{"\x00\x01\x02\xff", []byte{0, 0xfe, 'a'}}, []any{"\x00\x01\x02\xff", "\x00\xfea"}},
	{"empty table", []any{[]any{}}, nil},
	{"array", []any{[]any{int64(1), int64(2)}}, nil},
	{"array of 40", []any{seqInts(1, 40)}, nil},
	{"hash", []any{map[string]any{"a": int64(1), "b": "two", "c": true}},
		[]any{map[any]any{"a": int64(1), "b": "two", "c": true}}},
	{"hash keys of every kind", []any{map[any]any{true: "t", int64(10): "ten", 2.5: "f", "s": 1.25}}, nil},
	{"nested", []any{luaseri.Table{
		Array: []any{int64(1), []any{int64(2), []any{int64(3)}}},
		Hash:  map[any]any{"k": map[any]any{"x": "y"}},
	}}, nil},
	{"array and hash", []any{luaseri.Table{Array: []any{"a"}, Hash: map[any]any{"b": false}}}, nil},
	// Lua keeps no distinction between t[1] set through the hash part and
	// an array element: skynet packs it back as an array.
	{"hash key 1 becomes an array", []any{map[any]any{int64(1): "one"}}, []any{[]any{"one"}}},
	{"float key with an integral value becomes an integer", []any{map[any]any{3.0: "three", int64(4): "four"}},
		[]any{map[any]any{int64(3): "three", int64(4): "four"}}},
	{"command", []any{"cmd", true, 3.25, nil, luaseri.Table{Array: []any{"a"}, Hash: map[any]any{"b": false}}}, nil},
}

func TestCallValuesRoundTripEveryLuaTypeByNameLocalNameAndHandle(t *testing.T) {
	n := startSky(t, "sky", skynetpeer.Config{})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	handle := serviceHandle(t, n, "echo")
	services := map[string]*sender.Service{
		"@echo":                                  c.Service("sky", "@echo"),
		".echo":                                  c.Service("sky", ".echo"),
		fmt.Sprintf(":%08x", handle):             c.ServiceHandle("sky", handle),
		fmt.Sprintf(":%08x as a string", handle): c.Service("sky", fmt.Sprintf(":%08x", handle)),
	}
	for addr, svc := range services {
		for _, tc := range valueCases {
			t.Run(addr+"/"+tc.name, func(t *testing.T) {
				// interop_echo replies with every value it got, the first
				// one a command it does not know.
				args := append([]any{"echo"}, tc.send...)
				got, err := svc.CallValues(ctx, args...)
				if err != nil {
					t.Fatal(err)
				}
				want := tc.want
				if want == nil {
					want = tc.send
				}
				want = append([]any{"echo"}, want...)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("skynet echoed\n  %s\nwant\n  %s", describe(got), describe(want))
				}
			})
		}
	}
}

func TestQueryAnswersTheHandleSkynetRegistered(t *testing.T) {
	n := startSky(t, "sky", skynetpeer.Config{})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	for _, name := range []string{"echo", "seq", "driver"} {
		h, err := c.Query(ctx, "sky", name)
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		if want := serviceHandle(t, n, name); h != want {
			t.Errorf("query %s = :%08x, skynet registered :%08x", name, h, want)
		}
	}
	_, err := c.Query(ctx, "sky", "nosuch")
	var re *sender.RemoteError
	if !errors.As(err, &re) || re.Message != "name not found" {
		t.Errorf("query of an unregistered name: %v, want a RemoteError %q", err, "name not found")
	}
}

func TestRemoteErrorsCarrySkynetsExactText(t *testing.T) {
	n := startSky(t, "sky", skynetpeer.Config{})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	cases := []struct {
		name string
		call func() ([]any, error)
		want string
	}{
		{"a Lua error in the service", func() ([]any, error) {
			return c.CallValues(ctx, "sky", "@fail", "error", "boom from the test")
		}, "./lualib/skynet.lua:720: call failed"},
		{"an unknown @name", func() ([]any, error) {
			return c.CallValues(ctx, "sky", "@nosuch", "x")
		}, "Invalid name"},
		{"an unknown local .name", func() ([]any, error) {
			return c.CallValues(ctx, "sky", ".nosuch", "x")
		}, "./lualib/skynet.lua:747: call to invalid address"},
		{"an unknown handle", func() ([]any, error) {
			return c.ServiceHandle("sky", 0x00fffff0).CallValues(ctx, "x")
		}, "./lualib/skynet.lua:747: call to invalid address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call()
			var re *sender.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *sender.RemoteError", err)
			}
			if re.Message != tc.want {
				t.Errorf("remote text %q, want %q", re.Message, tc.want)
			}
			t.Logf("%v", err)
		})
	}
	// The node is still usable after every error.
	if _, err := c.CallValues(ctx, "sky", "@echo", "still there"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.WaitLog(ctx, regexp.MustCompile(`boom from the test`)); err != nil {
		t.Errorf("the Lua error's own text is only in skynet's log, and not even there: %v", err)
	}
}

// TestSkynetPacksAsDeepAsLuaseriReads: the depth limit is skynet.pack's to
// the table. skynet echoes 33 tables whose innermost is empty, and luaseri
// reads them back; a value inside 33 tables skynet refuses to pack.
func TestSkynetPacksAsDeepAsLuaseriReads(t *testing.T) {
	n := startSky(t, "sky", skynetpeer.Config{})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	deepest := any([]any{})
	tooDeep := any("x")
	for range 32 {
		deepest = []any{deepest}
		tooDeep = []any{tooDeep}
	}
	tooDeep = []any{tooDeep}
	got, err := c.CallValues(ctx, "sky", "@echo", "echo", deepest)
	if err != nil || !reflect.DeepEqual(got, []any{"echo", deepest}) {
		t.Fatalf("33 tables, the last empty: skynet echoed %v, %v; want them back", describe(got), err)
	}
	payload := append(mustPack(t, "echo"), 0x0e)
	inner := mustPack(t, tooDeep.([]any)[0])
	payload = append(append(payload, inner...), 0x00)
	_, err = c.Call(ctx, "sky", "@echo", payload)
	var re *sender.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("a value inside 33 tables: %v, want skynet's error reply (its pack refuses it)", err)
	}
	if _, err := n.WaitLog(ctx, regexp.MustCompile(`serialize can't pack too depth table`)); err != nil {
		t.Errorf("skynet's log does not say why: %v", err)
	}
}

func TestPushToAnUnknownNameIsRejectedAndCounted(t *testing.T) {
	n := startSky(t, "sky", skynetpeer.Config{})
	reg := prometheus.NewRegistry()
	c := clientTo(t, "sky", n.Addr, sender.WithRegisterer(reg))
	ctx := testCtx(t)
	if err := c.SendValues(ctx, "sky", "@nosuch", "x"); err != nil {
		t.Fatal(err)
	}
	// skynet answers a push to an unknown @name with an error reply
	// (session 0); skycall counts it, since its caller has gone.
	eventually(t, "the rejected push is counted as dropped (reason rejected)", func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "skycall_sender_dropped_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == "rejected" && m.GetCounter().GetValue() == 1 {
						return true
					}
				}
			}
		}
		return false
	})
	if _, err := c.CallValues(ctx, "sky", "@echo", "after"); err != nil {
		t.Fatalf("the connection did not survive the rejected push: %v", err)
	}
}

// payloadSizes are the sizes of the packed payloads, around the 32 KiB
// point where requests and replies become multipart.
var payloadSizes = []int{20, 32<<10 - 1, 32 << 10, 32<<10 + 1, 1 << 20, 10 << 20}

// packedString returns a string s whose pack(s) is exactly size bytes.
func packedString(size int, fill func([]byte)) string {
	n := size - 1 // short string: one header byte
	if n >= 32 {
		n = size - 3 // long string, u16 length
	}
	if n >= 1<<16 {
		n = size - 5 // long string, u32 length
	}
	b := make([]byte, n)
	fill(b)
	return string(b)
}

func TestPayloadsAroundTheMultipartBoundaryAreByteExactBothWays(t *testing.T) {
	n := startSky(t, "sky", skynetpeer.Config{})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range payloadSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := packedString(size, func(b []byte) {
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
			})
			payload, err := luaseri.Pack(s)
			if err != nil {
				t.Fatal(err)
			}
			if len(payload) != size {
				t.Fatalf("test bug: packed %d bytes, want %d", len(payload), size)
			}
			// Go -> skynet: skynet saw exactly s.
			start := time.Now()
			got, err := c.CallValues(ctx, "sky", "@echo", "digest", s)
			if err != nil {
				t.Fatal(err)
			}
			if want := []any{int64(len(s)), md5hex(s)}; !reflect.DeepEqual(got, want) {
				t.Fatalf("skynet received %v, want length and md5 %v", got, want)
			}
			// Both ways: the echo is the request's payload, byte for byte.
			echoStart := time.Now()
			reply, err := c.Call(ctx, "sky", "@echo", payload)
			if err != nil {
				t.Fatal(err)
			}
			echoTook := time.Since(echoStart)
			if !bytes.Equal(reply, payload) {
				t.Fatalf("echo of %d bytes came back as %d bytes, not byte-exact", len(payload), len(reply))
			}
			// skynet -> Go: a reply skynet built itself, of exactly size bytes.
			p := packedString(size, func(b []byte) { copy(b, pattern(len(b))) })
			want, _ := luaseri.Pack(p)
			reply, err = c.Call(ctx, "sky", "@echo", mustPack(t, "make", len(p)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(reply, want) {
				t.Fatalf("skynet's %d-byte reply differs from the pattern it was asked for (got %d bytes)", size, len(reply))
			}
			t.Logf("%d B: digest+echo+make %v, echo round trip %v", size, time.Since(start), echoTook)
		})
	}
}

func mustPack(t *testing.T, args ...any) []byte {
	t.Helper()
	p, err := luaseri.Pack(args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInterleavedSendsAndCallsArriveInOrder(t *testing.T) {
	const total = 10000
	n := startSky(t, "sky", skynetpeer.Config{})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	start := time.Now()
	calls := 0
	for i := 1; i <= total; i++ {
		// Three sends, then a call, and so on: the call's reply proves the
		// sends before it arrived first only if seq records them in order.
		if i%4 == 0 {
			got, err := c.CallValues(ctx, "sky", "@seq", "call", i)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if len(got) != 1 || got[0] != int64(i) {
				t.Fatalf("call %d answered %v", i, got)
			}
			calls++
		} else if err := c.SendValues(ctx, "sky", "@seq", "push", i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	got, err := c.CallValues(ctx, "sky", "@seq", "get")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages (%d calls) and the check in %v", total, calls, time.Since(start))
	checkSeq(t, got, 1, total)
}

// checkSeq checks that seq's "get" reply lists from..to in order.
func checkSeq(t *testing.T, got []any, from, to int) {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("seq replied %s, want one list", describe(got))
	}
	list, _ := got[0].([]any)
	want := seqInts(from, to)
	if len(list) != len(want) {
		t.Fatalf("skynet recorded %d messages, want %d", len(list), len(want))
	}
	for i := range want {
		if list[i] != want[i] {
			t.Fatalf("message %d arrived as %v, want %v (order broken)", i, list[i], want[i])
		}
	}
}

func TestSendsIssuedBeforeSkynetStartsAreDeliveredFirstInOrder(t *testing.T) {
	const queued = 500
	port, err := skynetpeer.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := clientTo(t, "sky", addr)
	ctx := testCtx(t)
	for i := 1; i <= queued; i++ {
		if err := c.SendValues(ctx, "sky", "@seq", "push", i); err != nil {
			t.Fatalf("send %d while skynet is not running: %v", i, err)
		}
	}
	// The Client is dialling a port nobody listens on, backing off.
	eventually(t, "the Client tries and fails to connect", func() bool {
		s := c.State("sky")
		return s == sender.StateBackoff || s == sender.StateConnecting
	})
	started := time.Now()
	startSky(t, "sky", skynetpeer.Config{Port: port})
	got, err := c.CallValues(ctx, "sky", "@seq", "call", queued+1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("skynet start to the first reply: %v (%d queued sends before it)", time.Since(started), queued)
	if len(got) != 1 || got[0] != int64(queued+1) {
		t.Fatalf("call answered %v", got)
	}
	got, err = c.CallValues(ctx, "sky", "@seq", "get")
	if err != nil {
		t.Fatal(err)
	}
	checkSeq(t, got, 1, queued+1)
}

func TestSkynetKilledMidStreamFailsInFlightCallsThenRecovers(t *testing.T) {
	const inFlight = 20
	n := startSky(t, "sky", skynetpeer.Config{Name: "sky"})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	if _, err := c.CallValues(ctx, "sky", "@echo", "warm"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, inFlight)
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 30 s: long past the kill, well within the test's deadline.
			_, err := c.CallValues(ctx, "sky", "@slow", "sleep", 3000, i)
			errs <- err
		}()
	}
	// Wait until skynet holds all of them, so each is truly in flight.
	for i := range inFlight {
		re := regexp.MustCompile(fmt.Sprintf(`slow: sleeping %d$`, i))
		if _, err := n.WaitLog(ctx, re); err != nil {
			t.Fatal(err)
		}
	}
	killed := time.Now()
	n.Kill()
	wg.Wait()
	close(errs)
	t.Logf("%d in-flight calls failed within %v of the kill", inFlight, time.Since(killed))
	for err := range errs {
		if !errors.Is(err, sender.ErrConnectionLost) {
			t.Errorf("in-flight call: %v, want ErrConnectionLost", err)
		}
	}

	// A call made while skynet is down waits for it, and succeeds once it is
	// back on the same address.
	later := make(chan error, 1)
	go func() {
		got, err := c.CallValues(ctx, "sky", "@echo", "after restart")
		if err == nil && !reflect.DeepEqual(got, []any{"after restart"}) {
			err = fmt.Errorf("echo answered %v", got)
		}
		later <- err
	}()
	cfg := n.Config()
	restarted := time.Now()
	startSky(t, "sky-restarted", skynetpeer.Config{Port: cfg.Port})
	if err := <-later; err != nil {
		t.Fatalf("call after restart: %v", err)
	}
	t.Logf("restart to the first reply: %v", time.Since(restarted))
	if _, err := c.CallValues(ctx, "sky", "@seq", "call", 1); err != nil {
		t.Fatal(err)
	}
}

// skycall writes a large message whole, so unlike skynet's own sender it
// never lets a later small message overtake it.
func TestLargeSendsFromSkycallAreNeverOvertaken(t *testing.T) {
	const total = 40
	n := startSky(t, "sky", skynetpeer.Config{})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	big := strings.Repeat("L", 1<<20)
	for i := 1; i <= total; i++ {
		args := []any{"push", i}
		if i%8 == 1 {
			args = append(args, big) // seq records i and ignores the rest
		}
		if err := c.SendValues(ctx, "sky", "@seq", args...); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.CallValues(ctx, "sky", "@seq", "get")
	if err != nil {
		t.Fatal(err)
	}
	checkSeq(t, got, 1, total)
}

// skynet answers in completion order; the Client matches replies by
// session, so a fast call is not held up behind a slow one.
func TestFastCallIsAnsweredWhileASlowCallIsInFlight(t *testing.T) {
	n := startSky(t, "sky", skynetpeer.Config{})
	c := clientTo(t, "sky", n.Addr)
	ctx := testCtx(t)
	slow := make(chan error, 1)
	go func() {
		got, err := c.CallValues(ctx, "sky", "@slow", "sleep", 3000, "slow") // 30 s
		if err == nil && !reflect.DeepEqual(got, []any{"slow"}) {
			err = fmt.Errorf("slow call answered %v", got)
		}
		slow <- err
	}()
	if _, err := n.WaitLog(ctx, regexp.MustCompile(`slow: sleeping slow$`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got, err := c.CallValues(ctx, "sky", "@echo", "fast"); err != nil || !reflect.DeepEqual(got, []any{"fast"}) {
		t.Fatalf("fast call: %v, %v", got, err)
	}
	t.Logf("fast call answered in %v while the slow one waits", time.Since(start))
	select {
	case err := <-slow:
		t.Fatalf("the slow call returned before the fast one: %v", err)
	default:
	}
}
