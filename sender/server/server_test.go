package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/wire"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// serverGoroutines returns the ids of the goroutines running Server code.
func serverGoroutines() map[string]bool {
	return testkit.Goroutines("skycall/sender/server.(*Server).", "skycall/sender/server.(*conn).", "skycall/sender/server.(*service).")
}

// serveTest serves s on 127.0.0.1:0 and returns the address and the channel
// receiving Serve's result. Cleanup closes s and checks that no goroutine
// of it is left.
func serveTest(t *testing.T, s *Server) (string, <-chan error) {
	t.Helper()
	before := serverGoroutines()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		testkit.Eventually(t, "every goroutine of the server has returned", func() bool {
			for id := range serverGoroutines() {
				if !before[id] {
					return false
				}
			}
			return true
		})
	})
	return l.Addr().String(), errc
}

func frame(body ...byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

// frames splits an encoded frame stream into its frames.
func frames(t *testing.T, b []byte) [][]byte {
	var frames [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("truncated frame stream")
		}
		n := 2 + int(binary.BigEndian.Uint16(b))
		frames = append(frames, b[:n])
		b = b[n:]
	}
	return frames
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// echo answers every call with its payload.
func echo(_ context.Context, req *Request) ([]byte, error) { return req.Payload, nil }

func mustHandle(t *testing.T, s *Server, name string, f HandlerFunc, opts ...HandleOption) uint32 {
	t.Helper()
	h, err := s.Handle(name, f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestServerCallAndPush(t *testing.T) {
	s := New("node-a")
	got := make(chan *Request, 10)
	handle := mustHandle(t, s, "@echo", func(ctx context.Context, req *Request) ([]byte, error) {
		got <- req
		return append([]byte("echo:"), req.Payload...), nil
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	pushSession := c.Send(wire.Request{Name: "@echo", Push: true, Payload: []byte("p1")})
	resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("c1"), Trace: []byte("trace-1")})
	if !resp.OK || string(resp.Payload) != "echo:c1" {
		t.Fatalf("call: got %+v, want ok echo:c1", resp)
	}

	push := testkit.Recv(t, "the push", got)
	want := &Request{Service: "@echo", Handle: handle, Session: 0, Push: true, Payload: []byte("p1"),
		RemoteAddr: push.RemoteAddr}
	if !reflect.DeepEqual(push, want) {
		t.Errorf("push reached the handler as %+v, want %+v", push, want)
	}
	if push.RemoteAddr.String() != c.Conn.LocalAddr().String() {
		t.Errorf("RemoteAddr %v, want the client's %v", push.RemoteAddr, c.Conn.LocalAddr())
	}
	if pushSession == 0 {
		t.Errorf("the session counter must advance for pushes")
	}
	call := testkit.Recv(t, "the call", got)
	if call.Push || call.Session != pushSession+1 || string(call.Payload) != "c1" || string(call.Trace) != "trace-1" {
		t.Errorf("call reached the handler as %+v, want session %d payload c1 trace trace-1", call, pushSession+1)
	}

	// Multipart push: reassembled, delivered, not answered.
	big := pattern(70 << 10)
	c.Send(wire.Request{Name: "@echo", Push: true, Payload: big})
	resp = c.Call(wire.Request{Name: "@echo", Payload: []byte("c2")})
	if !resp.OK || string(resp.Payload) != "echo:c2" {
		t.Fatalf("call after a multipart push: got %+v", resp)
	}
	if p := testkit.Recv(t, "the multipart push", got); !p.Push || !bytes.Equal(p.Payload, big) {
		t.Errorf("multipart push: push=%v, %d bytes", p.Push, len(p.Payload))
	}
}

func TestServerQuery(t *testing.T) {
	s := New("node-a")
	mustHandle(t, s, "@first", echo)
	store := mustHandle(t, s, "@store", echo)
	mustHandle(t, s, ".local", echo)
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	tests := []struct {
		name    string
		payload []byte
		want    []any  // ok reply, unpacked
		wantErr string // error reply
	}{
		{"node name", testkit.Pack(t, wire.NodeQueryName), []any{"node-a"}, ""},
		{"cluster name without @, as skynet's cluster.query", testkit.Pack(t, "store"), []any{int64(store)}, ""},
		{"name with @ is not registered under @@", testkit.Pack(t, "@store"), nil, "name not found"},
		{"local names are not queryable", testkit.Pack(t, ".local"), nil, "name not found"},
		{"missing name", testkit.Pack(t, "nope"), nil, "name not found"},
		{"payload not a name", testkit.Pack(t, int64(7)), nil, "name not found"},
		{"payload not packed", []byte{0xff, 0xff}, nil, "name not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := c.Call(wire.Request{Address: 0, Payload: tt.payload})
			if tt.wantErr != "" {
				if resp.OK || string(resp.Payload) != tt.wantErr {
					t.Fatalf("got ok=%v %q, want error %q", resp.OK, resp.Payload, tt.wantErr)
				}
				return
			}
			if !resp.OK {
				t.Fatalf("got error %q", resp.Payload)
			}
			if got := testkit.Unpack(t, resp.Payload); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestServerCallByHandle(t *testing.T) {
	s := New("node-a")
	mustHandle(t, s, "@other", echo)
	services := make(chan string, 10)
	h := mustHandle(t, s, "@store", func(ctx context.Context, req *Request) ([]byte, error) {
		services <- req.Service
		return []byte("store"), nil
	})
	if h != 2 {
		t.Fatalf("second registration got handle %d, want 2", h)
	}
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	tests := []struct {
		name string
		req  wire.Request
	}{
		{"numeric address", wire.Request{Address: h}},
		{"string handle", wire.Request{Name: fmt.Sprintf(":%08x", h)}},
		{"short string handle, as skynet's strtoul reads it", wire.Request{Name: fmt.Sprintf(":%x", h)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := c.Call(tt.req)
			if !resp.OK || string(resp.Payload) != "store" {
				t.Fatalf("got %+v, want ok store", resp)
			}
			if got := testkit.Recv(t, "the request", services); got != ":00000002" {
				t.Errorf("Service %q, want :00000002", got)
			}
		})
	}
}

func TestServerLargeMessages(t *testing.T) {
	s := New("node-a")
	mustHandle(t, s, "@echo", func(ctx context.Context, req *Request) ([]byte, error) {
		// Reply with something of the same size that is not the request.
		out := make([]byte, len(req.Payload))
		for i, b := range req.Payload {
			out[i] = ^b
		}
		return out, nil
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	for _, size := range []int{0x7fff, 0x8000, 0x8001, 70 << 10, 10 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			in := pattern(size)
			resp := c.Call(wire.Request{Name: "@echo", Payload: in})
			if !resp.OK || len(resp.Payload) != size {
				t.Fatalf("got ok=%v with %d bytes, want ok with %d", resp.OK, len(resp.Payload), size)
			}
			for i := range in {
				if resp.Payload[i] != ^in[i] {
					t.Fatalf("reply byte %d is %#x, want %#x", i, resp.Payload[i], ^in[i])
				}
			}
		})
	}
}

func TestServerInterleavedMultipart(t *testing.T) {
	s := New("node-a")
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	big := pattern(100 << 10)
	a, err := wire.AppendRequest(nil, &wire.Request{Name: "@echo", Session: 1, Payload: big})
	if err != nil {
		t.Fatal(err)
	}
	framesA := frames(t, a)
	if len(framesA) != 5 {
		t.Fatalf("100 KiB request has %d frames, want header and 4 parts", len(framesA))
	}
	b, err := wire.AppendRequest(nil, &wire.Request{Name: "@echo", Session: 2, Payload: []byte("small")})
	if err != nil {
		t.Fatal(err)
	}

	// Header of A, B, two parts of A, B again as session 3, the rest of A.
	c.WriteRaw(framesA[0])
	c.WriteRaw(b)
	if resp := c.Read(); resp.Session != 2 || string(resp.Payload) != "small" {
		t.Fatalf("B: got %+v, want session 2 small", resp)
	}
	c.WriteRaw(slices.Concat(framesA[1], framesA[2]))
	b3, _ := wire.AppendRequest(nil, &wire.Request{Name: "@echo", Session: 3, Payload: []byte("third")})
	c.WriteRaw(b3)
	if resp := c.Read(); resp.Session != 3 {
		t.Fatalf("got session %d, want 3 answered before A completes", resp.Session)
	}
	c.WriteRaw(slices.Concat(framesA[3:]...))
	resp := c.Read()
	if resp.Session != 1 || !resp.OK || !bytes.Equal(resp.Payload, big) {
		t.Fatalf("A: got session %d ok=%v %d bytes, want session 1 with the 100 KiB echoed", resp.Session, resp.OK, len(resp.Payload))
	}
}

func TestServerHandlerErrors(t *testing.T) {
	logger, logs := testkit.Logger(t)
	s := New("node-a", WithLogger(logger))
	pushErrs := make(chan struct{}, 1)
	mustHandle(t, s, "@fail", func(ctx context.Context, req *Request) ([]byte, error) {
		switch string(req.Payload) {
		case "panic":
			panic("boom")
		case "long":
			return nil, errors.New(strings.Repeat("e", 0x9000))
		case "push":
			defer func() { pushErrs <- struct{}{} }()
		}
		return nil, fmt.Errorf("store is read-only: retry on the primary")
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"error text reaches the caller", "x", "store is read-only: retry on the primary"},
		{"panic is an error reply", "panic", "skycall: the handler of @fail failed; see the log of node node-a"},
		{"error text is cut as skynet does", "long", strings.Repeat("e", 0x8000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := c.Call(wire.Request{Name: "@fail", Payload: []byte(tt.payload)})
			if resp.OK || string(resp.Payload) != tt.want {
				t.Fatalf("got ok=%v %.80q, want error %.80q", resp.OK, resp.Payload, tt.want)
			}
		})
	}
	if !logs.Contains("Handler panicked", "boom", "@fail") {
		t.Errorf("the panic was not logged")
	}

	// A failing push is logged, not answered.
	c.Send(wire.Request{Name: "@fail", Push: true, Payload: []byte("push")})
	testkit.Recv(t, "the push", pushErrs)
	testkit.Eventually(t, "the push error is logged", func() bool { return logs.Contains("Push handler failed", "read-only") })
	if resp := c.Call(wire.Request{Name: "@fail", Payload: []byte("x")}); resp.OK {
		t.Fatalf("unexpected ok %+v", resp)
	}
}

func TestServerUnknownName(t *testing.T) {
	s := New("node-a")
	h := mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	tests := []struct {
		name string
		req  wire.Request
	}{
		{"unknown cluster name", wire.Request{Name: "@nope"}},
		{"cluster name without @", wire.Request{Name: "echo"}},
		{"unknown local name", wire.Request{Name: ".nope"}},
		{"unknown handle", wire.Request{Address: h + 100}},
		{"unknown string handle", wire.Request{Name: fmt.Sprintf(":%08x", h+100)}},
		{"bad string handle", wire.Request{Name: ":zz"}},
		{"push to an unknown name", wire.Request{Name: "@nope", Push: true}},
		{"multipart call to an unknown name", wire.Request{Name: "@nope", Payload: pattern(40 << 10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			session := c.Send(tt.req)
			if tt.req.Push {
				session = 0 // as the real skynet receiver answers a push
			}
			resp := c.Read()
			if resp.Session != session || resp.OK || string(resp.Payload) != "Invalid name" {
				t.Fatalf("got %+v, want session %d error Invalid name", resp, session)
			}
		})
	}
}

func TestServerMalformedFrames(t *testing.T) {
	logger, logs := testkit.Logger(t)
	s := New("node-a", WithLogger(logger), WithMaxPartial(2))
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)

	header := func(session uint32) []byte {
		b := []byte{0x81, 5, '@', 'e', 'c', 'h', 'o'}
		b = binary.LittleEndian.AppendUint32(b, session)
		return frame(binary.LittleEndian.AppendUint32(b, 40000)...)
	}
	part := func(session uint32) []byte {
		return frame(binary.LittleEndian.AppendUint32([]byte{0x03}, session)...)
	}

	tests := []struct {
		name      string
		frames    []byte
		reply     uint32 // session answered with an error, 0 for none
		replyText string
		fatal     bool
	}{
		{name: "zero-length frame", frames: frame()},
		{name: "unknown type", frames: frame(0x07, 1, 2, 3)},
		{name: "short frame", frames: frame(0x00, 1)},
		// skynet's clusteragent takes orphan parts for a request with no
		// address: "Invalid name" (test/interop checks it against skynet).
		{name: "last part without header", frames: part(900), reply: 900, replyText: "Invalid name"},
		{name: "parts shorter than the header said", frames: slices.Concat(header(901), part(901)),
			reply: 901, replyText: "Invalid large req"},
		{name: "more incomplete multipart requests than allowed",
			frames: slices.Concat(header(910), header(911), header(912)), fatal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testkit.Dial(t, addr)
			c.WriteRaw(tt.frames)
			if tt.fatal {
				c.ExpectClosed()
				testkit.Eventually(t, "the close is logged with the peer", func() bool {
					return logs.Contains("Closing connection", c.Conn.LocalAddr().String())
				})
				// The server still serves others.
				other := testkit.Dial(t, addr)
				if resp := other.Call(wire.Request{Name: "@echo", Payload: []byte("hi")}); !resp.OK {
					t.Fatalf("another connection: got %+v", resp)
				}
				return
			}
			if tt.reply != 0 {
				resp := c.Read()
				if resp.Session != tt.reply || resp.OK || string(resp.Payload) != tt.replyText {
					t.Fatalf("got %+v, want session %d error %q", resp, tt.reply, tt.replyText)
				}
			}
			// The connection stays usable.
			if resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("still here")}); string(resp.Payload) != "still here" {
				t.Fatalf("after the malformed frame: got %+v", resp)
			}
			if !logs.Contains("malformed", c.Conn.LocalAddr().String()) {
				t.Errorf("the malformed frame was not logged with the peer address")
			}
		})
	}
}

func TestServerOversizeMessage(t *testing.T) {
	const limit = 64 << 10
	s := New("node-a", WithMaxMessageSize(limit))
	mustHandle(t, s, "@echo", echo)
	mustHandle(t, s, "@big", func(ctx context.Context, req *Request) ([]byte, error) {
		return make([]byte, limit+1), nil
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	t.Run("request over the limit", func(t *testing.T) {
		resp := c.Call(wire.Request{Name: "@echo", Payload: pattern(limit + 1)})
		if resp.OK || !strings.Contains(string(resp.Payload), "message too large") {
			t.Fatalf("got ok=%v %q, want a message too large error", resp.OK, resp.Payload)
		}
	})
	t.Run("header announcing 1 GiB is refused before its parts", func(t *testing.T) {
		session := c.Sessions.Next()
		b := []byte{0x81, 5, '@', 'e', 'c', 'h', 'o'}
		b = binary.LittleEndian.AppendUint32(b, session)
		c.WriteRaw(frame(binary.LittleEndian.AppendUint32(b, 1<<30)...))
		resp := c.Read()
		if resp.Session != session || resp.OK || !strings.Contains(string(resp.Payload), "message too large") {
			t.Fatalf("got %+v, want session %d message too large", resp, session)
		}
		// Its parts, if the sender goes on, are dropped.
		part := binary.LittleEndian.AppendUint32([]byte{0x03}, session)
		c.WriteRaw(frame(append(part, 1, 2, 3)...))
	})
	t.Run("reply over the limit", func(t *testing.T) {
		resp := c.Call(wire.Request{Name: "@big"})
		if resp.OK || !strings.Contains(string(resp.Payload), "over the server's limit") {
			t.Fatalf("got ok=%v %q, want an error naming the limit", resp.OK, resp.Payload)
		}
	})
	t.Run("connection still usable", func(t *testing.T) {
		if resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("ok")}); string(resp.Payload) != "ok" {
			t.Fatalf("got %+v", resp)
		}
	})
}

func TestServerPeerDisconnectMidMessage(t *testing.T) {
	logger, logs := testkit.Logger(t)
	s := New("node-a", WithLogger(logger))
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	mustHandle(t, s, "@block", func(ctx context.Context, req *Request) ([]byte, error) {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return nil, ctx.Err()
	})
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	c.Send(wire.Request{Name: "@block"})
	testkit.Recv(t, "the handler to start", started)
	b, err := wire.AppendRequest(nil, &wire.Request{Name: "@echo", Session: 99, Payload: pattern(100 << 10)})
	if err != nil {
		t.Fatal(err)
	}
	c.WriteRaw(b[:len(b)/2]) // header, a part and a half
	peer := c.Conn.LocalAddr().String()
	c.Conn.Close()

	if err := testkit.Recv(t, "the handler's ctx to be cancelled", cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("ctx.Err() = %v, want context.Canceled", err)
	}
	testkit.Eventually(t, "the connection is gone", func() bool { return s.connCount() == 0 })
	if !logs.Contains("in the middle of a request", peer) {
		t.Errorf("the disconnect was not logged with the peer address")
	}
	// Cleanup checks that no goroutine is left.
}

func TestServerPerServiceOrdering(t *testing.T) {
	s := New("node-a")
	var mu sync.Mutex
	var got []int64
	mustHandle(t, s, "@seq", func(ctx context.Context, req *Request) ([]byte, error) {
		v := testkit.Unpack(t, req.Payload)
		mu.Lock()
		got = append(got, v[0].(int64))
		mu.Unlock()
		return nil, nil
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	var want []int64
	var batch []byte
	for i := range int64(100) {
		want = append(want, i)
		r := wire.Request{Name: "@seq", Session: c.Sessions.Next(), Push: true, Payload: testkit.Pack(t, i)}
		batch, _ = wire.AppendRequest(batch, &r)
	}
	c.WriteRaw(batch)
	testkit.Eventually(t, "100 pushes are handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 100
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("pushes handled in order %v, want %v", got, want)
	}
}

func TestServerSlowServiceDoesNotBlockAnother(t *testing.T) {
	s := New("node-a")
	release := make(chan struct{})
	mustHandle(t, s, "@slow", func(ctx context.Context, req *Request) ([]byte, error) {
		select {
		case <-release:
			return []byte("slow"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	mustHandle(t, s, "@fast", echo)
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	slow := c.Send(wire.Request{Name: "@slow"})
	fast := c.Send(wire.Request{Name: "@fast", Payload: []byte("fast")})
	if resp := c.Read(); resp.Session != fast || string(resp.Payload) != "fast" {
		t.Fatalf("got %+v, want the fast reply (session %d) while @slow is busy", resp, fast)
	}
	close(release)
	if resp := c.Read(); resp.Session != slow || string(resp.Payload) != "slow" {
		t.Fatalf("got %+v, want the slow reply (session %d)", resp, slow)
	}
}

// A full service queue stops the reader of the connection feeding it (and
// so that connection's later messages), not the other connections.
func TestServerFullQueueBlocksOnlyItsConnection(t *testing.T) {
	s := New("node-a")
	release := make(chan struct{})
	mustHandle(t, s, "@slow", func(ctx context.Context, req *Request) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}, WithQueueSize(1))
	mustHandle(t, s, "@fast", echo)
	addr, _ := serveTest(t, s)
	c1 := testkit.Dial(t, addr)
	c2 := testkit.Dial(t, addr)

	// One push runs, one waits in the queue, the third holds c1's reader.
	for range 3 {
		c1.Send(wire.Request{Name: "@slow", Push: true})
	}
	fast1 := c1.Send(wire.Request{Name: "@fast", Payload: []byte("c1")})
	if resp := c2.Call(wire.Request{Name: "@fast", Payload: []byte("c2")}); string(resp.Payload) != "c2" {
		t.Fatalf("other connection: got %+v", resp)
	}
	if resp, err := c1.ReadErr(200 * time.Millisecond); err == nil {
		t.Fatalf("got %+v while c1's reader should wait for @slow's queue", resp)
	}
	close(release)
	if resp := c1.Read(); resp.Session != fast1 || string(resp.Payload) != "c1" {
		t.Fatalf("got %+v, want c1's fast reply once @slow drained", resp)
	}
}

func TestServerConcurrentService(t *testing.T) {
	s := New("node-a")
	var inside sync.WaitGroup
	inside.Add(2)
	mustHandle(t, s, "@par", func(ctx context.Context, req *Request) ([]byte, error) {
		inside.Done()
		inside.Wait() // only returns if both calls run at once
		return req.Payload, nil
	}, WithConcurrent(), WithQueueSize(4))
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	a := c.Send(wire.Request{Name: "@par", Payload: []byte("a")})
	b := c.Send(wire.Request{Name: "@par", Payload: []byte("b")})
	got := map[uint32]string{}
	for range 2 {
		resp := c.Read()
		got[resp.Session] = string(resp.Payload)
	}
	if want := map[uint32]string{a: "a", b: "b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestServerShutdownWaitsForInFlight(t *testing.T) {
	s := New("node-a")
	started := make(chan struct{})
	release := make(chan struct{})
	mustHandle(t, s, "@block", func(ctx context.Context, req *Request) ([]byte, error) {
		close(started)
		select {
		case <-release:
			return []byte("done"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	addr, serveErr := serveTest(t, s)
	c := testkit.Dial(t, addr)
	session := c.Send(wire.Request{Name: "@block"})
	testkit.Recv(t, "the handler to start", started)

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		shutdown <- s.Shutdown(ctx)
	}()
	if err := testkit.Recv(t, "Serve to return", serveErr); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve returned %v, want ErrClosed", err)
	}
	testkit.Eventually(t, "the listener is closed", func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while a handler was running", err)
	default:
	}

	close(release)
	if resp := c.Read(); resp.Session != session || !resp.OK || string(resp.Payload) != "done" {
		t.Fatalf("got %+v, want the in-flight reply", resp)
	}
	if err := testkit.Recv(t, "Shutdown to return", shutdown); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.ExpectClosed()
	if err := s.Serve(&nopListener{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Shutdown: %v, want ErrClosed", err)
	}
}

func TestServerShutdownContextExpires(t *testing.T) {
	s := New("node-a")
	started := make(chan struct{})
	cancelled := make(chan struct{})
	mustHandle(t, s, "@stuck", func(ctx context.Context, req *Request) ([]byte, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)
	c.Send(wire.Request{Name: "@stuck"})
	testkit.Recv(t, "the handler to start", started)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	testkit.Recv(t, "the handler's ctx to be cancelled", cancelled)
	c.ExpectClosed()
}

func TestServerIdleTimeout(t *testing.T) {
	const idle = 100 * time.Millisecond
	s := New("node-a", WithIdleTimeout(idle))
	release := make(chan struct{})
	mustHandle(t, s, "@slow", func(ctx context.Context, req *Request) ([]byte, error) {
		select {
		case <-release:
			return []byte("slow"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	addr, _ := serveTest(t, s)

	idleConn := testkit.Dial(t, addr)
	busy := testkit.Dial(t, addr)
	session := busy.Send(wire.Request{Name: "@slow"})
	idleConn.ExpectClosed()
	// A call running for longer than the idle timeout keeps its connection.
	time.AfterFunc(3*idle, func() { close(release) })
	if resp := busy.Read(); resp.Session != session || string(resp.Payload) != "slow" {
		t.Fatalf("got %+v, want the slow reply", resp)
	}
}

func TestServerTLS(t *testing.T) {
	cert, pool := testkit.SelfSigned(t)
	s := New("node-a", WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)

	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c := testkit.NewWireClient(t, nc)
	for _, size := range []int{5, 70 << 10} {
		in := pattern(size)
		if resp := c.Call(wire.Request{Name: "@echo", Payload: in}); !resp.OK || !bytes.Equal(resp.Payload, in) {
			t.Fatalf("%d bytes over TLS: got ok=%v %d bytes", size, resp.OK, len(resp.Payload))
		}
	}

	// A plain TCP sender gets no answer on a TLS server.
	plain := testkit.Dial(t, addr)
	plain.Send(wire.Request{Name: "@echo", Payload: []byte("x")})
	plain.ExpectClosed()
}

func TestServerHandleRegistration(t *testing.T) {
	s := New("node-a")
	for i, name := range []string{"@a", ".b", "c"} {
		if h := mustHandle(t, s, name, echo); h != uint32(i+1) {
			t.Errorf("%s got handle %d, want %d", name, h, i+1)
		}
	}
	tests := []struct {
		name string
		h    Handler
		dup  bool
	}{
		{name: "@a", h: HandlerFunc(echo), dup: true},
		{name: "", h: HandlerFunc(echo)},
		{name: "@", h: HandlerFunc(echo)},
		{name: ":00000001", h: HandlerFunc(echo)},
		{name: "@" + wire.NodeQueryName, h: HandlerFunc(echo)},
		{name: "@" + strings.Repeat("x", 255), h: HandlerFunc(echo)},
		{name: "@nil", h: nil},
	}
	for _, tt := range tests {
		if _, err := s.Handle(tt.name, tt.h); err == nil {
			t.Errorf("Handle(%.20q) succeeded, want an error", tt.name)
		} else if got := errors.Is(err, ErrServiceExists); got != tt.dup {
			t.Errorf("Handle(%.20q): %v; errors.Is ErrServiceExists = %v, want %v", tt.name, err, got, tt.dup)
		}
	}
	if h := mustHandle(t, s, "@d", echo); h != 4 {
		t.Errorf("after failed registrations got handle %d, want 4", h)
	}
}

func TestServerCloseIsIdempotent(t *testing.T) {
	s := New("node-a")
	serveTest(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown after Close: %v", err)
	}
}

type nopListener struct{ closed bool }

func (l *nopListener) Accept() (net.Conn, error) { return nil, io.EOF }
func (l *nopListener) Close() error              { l.closed = true; return nil }
func (l *nopListener) Addr() net.Addr            { return &net.TCPAddr{} }

// BenchmarkServerCall measures pipelined calls of 100 bytes on one
// connection to one sequential service.
func BenchmarkServerCall(b *testing.B) { benchmarkServerCall(b) }

// BenchmarkServerCallWithMetrics is BenchmarkServerCall with
// WithRegisterer: the cost of the per-service metrics.
func BenchmarkServerCallWithMetrics(b *testing.B) {
	benchmarkServerCall(b, WithRegisterer(prometheus.NewRegistry()))
}

func benchmarkServerCall(b *testing.B, opts ...Option) {
	s := New("node-a", opts...)
	if _, err := s.Handle("@echo", HandlerFunc(echo)); err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	dec := wire.NewResponseDecoder(bufio.NewReader(nc), wire.Limits{})
	payload := pattern(100)

	b.ReportAllocs()
	b.ResetTimer()
	werr := make(chan error, 1)
	go func() {
		var sessions wire.SessionCounter
		var buf []byte
		for i := 0; i < b.N; {
			buf = buf[:0]
			for j := 0; j < 64 && i < b.N; j, i = j+1, i+1 {
				buf, _ = wire.AppendRequest(buf, &wire.Request{Name: "@echo", Session: sessions.Next(), Payload: payload})
			}
			if _, err := nc.Write(buf); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	for range b.N {
		if _, err := dec.Next(); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
}
