package sender

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
)

// trTracer is an SDK provider recording into an in-memory exporter.
func trTracer(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

// trRoot starts the caller's own span, as an instrumented program has one.
func trRoot(t *testing.T, tp trace.TracerProvider) (context.Context, trace.Span) {
	ctx, span := tp.Tracer("test").Start(ctCtx(t), "player-action")
	t.Cleanup(func() { span.End() })
	return ctx, span
}

// trSpan finds the exported span of kind and name.
func trSpan(t *testing.T, exp *tracetest.InMemoryExporter, kind trace.SpanKind, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	testkit.Eventually(t, "a "+kind.String()+" span "+name+" exported", func() bool {
		for _, s := range exp.GetSpans().Snapshots() {
			if s.SpanKind() == kind && s.Name() == name {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// trTracedServer is a skycall Server tracing into tp, whose @echo handler
// (a call) and @sink handler (a push) report the span their ctx carries.
func trTracedServer(t *testing.T, tp trace.TracerProvider) (addr string, inHandler <-chan trace.SpanContext) {
	s := server.New("db", server.WithTracerProvider(tp))
	spans := make(chan trace.SpanContext, 16)
	h := func(ctx context.Context, req *server.Request) ([]byte, error) {
		spans <- trace.SpanContextFromContext(ctx)
		if string(req.Payload) == "fail" {
			return nil, &RemoteError{Message: "refused"}
		}
		return req.Payload, nil
	}
	sendertest.Handle(t, s, "@echo", h)
	sendertest.Handle(t, s, "@sink", h)
	addr = sendertest.Serve(t, s)
	return addr, spans
}

func TestCallMakesClientSpanParentOfServerSpan(t *testing.T) {
	tp, exp := trTracer(t)
	addr, inHandler := trTracedServer(t, tp)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": addr}), WithTracerProvider(tp))
	ctx, root := trRoot(t, tp)

	if reply, err := c.Call(ctx, "db", "@echo", []byte("hello")); err != nil || string(reply) != "hello" {
		t.Fatalf("traced call: %q, %v", reply, err)
	}
	handlerSpan := testkit.Recv(t, "the handler's span", inHandler)

	client := trSpan(t, exp, trace.SpanKindClient, "@echo")
	server := trSpan(t, exp, trace.SpanKindServer, "@echo")
	if client.Parent().SpanID() != root.SpanContext().SpanID() || client.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Errorf("client span's parent = %v, want the caller's span %v", client.Parent(), root.SpanContext())
	}
	if server.Parent().SpanID() != client.SpanContext().SpanID() || server.SpanContext().TraceID() != client.SpanContext().TraceID() {
		t.Errorf("server span's parent = %v, want the client span %v", server.Parent(), client.SpanContext())
	}
	if !server.Parent().IsRemote() {
		t.Error("server span's parent is not remote: it did not come over the wire")
	}
	if handlerSpan.SpanID() != server.SpanContext().SpanID() {
		t.Errorf("the handler's ctx carries span %v, want the server span %v", handlerSpan, server.SpanContext())
	}
	for key, want := range map[string]string{
		"rpc.system": "skynet", "rpc.service": "@echo", "skycall.node": "db", "skycall.kind": "call",
		"skycall.payload_size": "5", "skycall.reply_size": "5", "skycall.result": "ok",
	} {
		if got, _ := testkit.SpanAttr(client, key); got != want {
			t.Errorf("client span attribute %s = %q, want %q", key, got, want)
		}
	}
	if client.Status().Code == codes.Error {
		t.Errorf("client span status %v for a call that succeeded", client.Status())
	}
}

func TestSendIsTracedToThePushHandler(t *testing.T) {
	tp, exp := trTracer(t)
	addr, inHandler := trTracedServer(t, tp)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": addr}), WithTracerProvider(tp))
	ctx, _ := trRoot(t, tp)

	if err := c.Send(ctx, "db", "@sink", []byte("pushed")); err != nil {
		t.Fatal(err)
	}
	handlerSpan := testkit.Recv(t, "the push handler's span", inHandler)
	client := trSpan(t, exp, trace.SpanKindClient, "@sink")
	server := trSpan(t, exp, trace.SpanKindServer, "@sink")
	if server.Parent().SpanID() != client.SpanContext().SpanID() || handlerSpan.TraceID() != client.SpanContext().TraceID() {
		t.Errorf("push handler span %v (parent %v), want a child of the send span %v", handlerSpan, server.Parent(), client.SpanContext())
	}
	for key, want := range map[string]string{"skycall.kind": "push", "skycall.result": "queued", "skycall.payload_size": "6"} {
		if got, _ := testkit.SpanAttr(client, key); got != want {
			t.Errorf("send span attribute %s = %q, want %q", key, got, want)
		}
	}
}

func TestFailedCallEndsClientSpanWithError(t *testing.T) {
	tp, exp := trTracer(t)
	addr, inHandler := trTracedServer(t, tp)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": addr}), WithTracerProvider(tp))
	ctx, _ := trRoot(t, tp)
	if _, err := c.Call(ctx, "db", "@echo", []byte("fail")); err == nil {
		t.Fatal("a failing handler's call succeeded")
	}
	testkit.Recv(t, "the handler's span", inHandler)
	client := trSpan(t, exp, trace.SpanKindClient, "@echo")
	if client.Status().Code != codes.Error {
		t.Errorf("client span status = %v, want Error", client.Status())
	}
	if got, _ := testkit.SpanAttr(client, "skycall.result"); got != resultRemoteError {
		t.Errorf("skycall.result = %q, want %q", got, resultRemoteError)
	}
}

// TestTracedCallsQueuedBeforeReadyKeepTheirOwnTags queues calls while the
// node is not ready, in different traces and none, a multipart one among
// them, and checks each reaches the server with its own trace: the tag
// travels with its request through the FIFO.
func TestTracedCallsQueuedBeforeReadyKeepTheirOwnTags(t *testing.T) {
	tp, exp := trTracer(t)
	addr, inHandler := trTracedServer(t, tp)
	reg := registry.NewStatic(nil)
	reg.SetNotReady("db", "starting")
	c := ctNewClient(t, reg, WithTracerProvider(tp))

	big := bytes.Repeat([]byte("x"), 3*wire.MultiPart+7)
	payloads := [][]byte{[]byte("a"), big, []byte("untraced"), []byte("c")}
	roots := make([]trace.Span, len(payloads))
	var wg sync.WaitGroup
	errs := make(chan error, len(payloads))
	for i, p := range payloads {
		ctx := ctCtx(t)
		if string(p) != "untraced" {
			ctx, roots[i] = trRoot(t, tp)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Call(ctx, "db", "@echo", p)
			errs <- err
		}()
		testkit.Eventually(t, "the call queued", func() bool { return ctQueued(c, "db") == i+1 })
	}
	reg.Set("db", addr)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for range payloads {
		testkit.Recv(t, "a handler's span", inHandler)
	}
	testkit.Eventually(t, "three client and four server spans", func() bool { return len(exp.GetSpans()) == 7 })
	clientOf := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var servers []sdktrace.ReadOnlySpan
	for _, s := range exp.GetSpans().Snapshots() {
		if s.SpanKind() == trace.SpanKindClient {
			clientOf[s.SpanContext().SpanID()] = s
		} else if s.SpanKind() == trace.SpanKindServer {
			servers = append(servers, s)
		}
	}
	untraced := 0
	for _, srv := range servers {
		size, _ := testkit.SpanAttr(srv, "skycall.payload_size")
		if !srv.Parent().IsValid() {
			untraced++
			if size != "8" {
				t.Errorf("the %s-byte call has no parent, want only the untraced one to", size)
			}
			continue
		}
		client, ok := clientOf[srv.Parent().SpanID()]
		if !ok {
			t.Errorf("server span of the %s-byte call has parent %v, no client span", size, srv.Parent())
			continue
		}
		if got, _ := testkit.SpanAttr(client, "skycall.payload_size"); got != size {
			t.Errorf("the %s-byte call's server span is the child of the %s-byte call's client span", size, got)
		}
	}
	if untraced != 1 {
		t.Errorf("%d server spans without a parent, want 1 (the untraced call)", untraced)
	}
}

// trRecordingPeer confirms like a skynet node and records, for every
// request after the node query, its trace tag (nil for none) and whether
// it was a push; it echoes calls.
type trRecordingPeer struct {
	addr string
	mu   sync.Mutex
	tags []string // "push:" or "call:", then the tag or "-"
}

func trServeRecording(t *testing.T) *trRecordingPeer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &trRecordingPeer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 1)
	t.Cleanup(func() {
		l.Close()
		select {
		case nc := <-conns:
			nc.Close()
		default:
		}
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		conns <- nc
		dec := wire.NewRequestDecoder(bufio.NewReader(nc), wire.Limits{})
		for {
			req, err := dec.Next()
			if err != nil {
				return
			}
			if req.Address == 0 && req.Name == "" {
				nc.Write(wire.AppendResponse(nil, &wire.Response{Session: req.Session, Payload: []byte("name not found")}))
				continue
			}
			kind, tag := "call:", "-"
			if req.Push {
				kind = "push:"
			}
			if req.Trace != nil {
				tag = string(req.Trace)
			}
			p.mu.Lock()
			p.tags = append(p.tags, kind+tag)
			p.mu.Unlock()
			if !req.Push {
				nc.Write(wire.AppendResponse(nil, &wire.Response{Session: req.Session, OK: true, Payload: req.Payload}))
			}
		}
	}()
	return p
}

func (p *trRecordingPeer) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tags...)
}

func TestUntracedMessagesCarryNoTraceTag(t *testing.T) {
	tp, _ := trTracer(t)
	for _, tc := range []struct {
		name string
		opts []Option
		ctx  func() context.Context
	}{
		{"provider set, ctx without a span", []Option{WithTracerProvider(tp)}, func() context.Context { return ctCtx(t) }},
		{"noop provider, ctx with a span", []Option{WithTracerProvider(noop.NewTracerProvider())}, func() context.Context { ctx, _ := trRoot(t, tp); return ctx }},
		// No test of this package sets the global provider.
		{"global provider unset, ctx with a span", nil, func() context.Context { ctx, _ := trRoot(t, tp); return ctx }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := trServeRecording(t)
			c := ctNewClient(t, registry.NewStatic(map[string]string{"db": p.addr}), tc.opts...)
			ctx := tc.ctx()
			if _, err := c.Call(ctx, "db", "@echo", []byte("c")); err != nil {
				t.Fatal(err)
			}
			if err := c.Send(ctx, "db", "@echo", []byte("s")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Call(ctx, "db", "@echo", []byte("c")); err != nil {
				t.Fatal(err)
			}
			ctEqual(t, "requests seen by the peer", p.seen(), []string{"call:-", "push:-", "call:-"})
		})
	}
}

// TestSkynetPeerGetsTagsOnCallsOnly: skynet's clusteragent drops the tag of
// a push but keeps it for the next call on the connection, so a Client
// writes tags before calls only when the peer is skynet (it answered the
// node query as skynet does).
func TestSkynetPeerGetsTagsOnCallsOnly(t *testing.T) {
	tp, exp := trTracer(t)
	p := trServeRecording(t)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": p.addr}), WithTracerProvider(tp))
	ctx, _ := trRoot(t, tp)
	if _, err := c.Call(ctx, "db", "@echo", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "db", "@echo", []byte("s")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, "db", "@echo", []byte("c")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "three client spans", func() bool { return len(exp.GetSpans()) == 3 })
	var want []string
	for _, s := range exp.GetSpans().Snapshots() {
		if kind, _ := testkit.SpanAttr(s, "skycall.kind"); kind == "push" {
			want = append(want, "push:-")
		} else {
			want = append(want, "call:"+string(appendTraceparent(nil, s.SpanContext())))
		}
	}
	got := p.seen()
	ctEqual(t, "requests seen by the skynet-like peer", got, want)
	for _, tag := range got {
		if tag != "push:-" && !strings.HasSuffix(tag, "-01") {
			t.Errorf("tag %q: want a sampled W3C traceparent", tag)
		}
	}
}

func TestTraceparentMatchesW3CFormat(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	for flags, want := range map[trace.TraceFlags]string{
		trace.FlagsSampled: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		0:                  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
	} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
		got := appendTraceparent(nil, sc)
		if string(got) != want || len(got) != traceparentLen {
			t.Errorf("traceparent = %q, want %q", got, want)
		}
	}
	// Golden bytes of the tag frame before a call: skynet's packtrace is
	// 2-byte big-endian length, 0x04, the tag.
	frame := appendRequest(nil, &message{name: "@echo"}, body{payload: []byte("hi"), tag: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}, 1)
	wantHead := append([]byte{0x00, 56, 0x04}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"...)
	if !bytes.HasPrefix(frame, wantHead) {
		t.Errorf("request with a tag starts % x, want % x", frame[:len(wantHead)], wantHead)
	}
}

func TestSendWithoutSpanAllocatesNothingWithTracingConfigured(t *testing.T) {
	tp, _ := trTracer(t)
	p := trServeRecording(t)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": p.addr}), WithTracerProvider(tp))
	svc := c.Service("db", "@echo")
	ctx := ctCtx(t)
	payload := make([]byte, 64)
	if _, err := svc.Call(ctx, payload); err != nil { // connect
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := svc.Send(ctx, payload); err != nil {
			t.Fatal(err)
		}
	})
	// Buffers grow now and then while the writer catches up; anything per
	// message would show as 1 or more.
	if allocs >= 0.5 {
		t.Errorf("Send without a span: %.2f allocations per message, want 0", allocs)
	}
}
