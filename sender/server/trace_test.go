package server

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/wire"
)

func TestServerSpanIsChildOfTheTraceparentInTheTraceTag(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := New("node-a", WithTracerProvider(tp))
	handlerSpans := make(chan trace.SpanContext, 4)
	mustHandle(t, s, "@echo", func(ctx context.Context, req *Request) ([]byte, error) {
		handlerSpans <- trace.SpanContextFromContext(ctx)
		if string(req.Payload) == "fail" {
			return nil, errors.New("refused")
		}
		return req.Payload, nil
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)

	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("hi"), Trace: []byte(traceparent)}); !resp.OK {
		t.Fatalf("traced call: %+v", resp)
	}
	inHandler := testkit.Recv(t, "the handler's span", handlerSpans)
	// skynet's own tag form, and a call that fails.
	if resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("fail"), Trace: []byte("(:01000002-:01000010-7)")}); resp.OK {
		t.Fatal("fail succeeded")
	}
	testkit.Recv(t, "the second handler's span", handlerSpans)

	testkit.Eventually(t, "two spans exported", func() bool { return len(exp.GetSpans().Snapshots()) == 2 })
	spans := exp.GetSpans().Snapshots()
	child, other := spans[0], spans[1]
	if got := child.Parent().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" || child.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("span parent = %s/%s, want the traceparent's trace and span", got, child.Parent().SpanID())
	}
	if child.SpanContext().TraceID() != child.Parent().TraceID() || inHandler.SpanID() != child.SpanContext().SpanID() {
		t.Errorf("the handler's ctx carries span %v, want the server span %v of the same trace", inHandler, child.SpanContext())
	}
	if child.SpanKind() != trace.SpanKindServer || child.Name() != "@echo" {
		t.Errorf("span %q kind %v, want @echo, server", child.Name(), child.SpanKind())
	}
	for key, want := range map[string]string{"rpc.system": "skynet", "rpc.service": "@echo", "skycall.node": "node-a", "skycall.payload_size": "2"} {
		if got, _ := testkit.SpanAttr(child, key); got != want {
			t.Errorf("attribute %s = %q, want %q", key, got, want)
		}
	}
	if other.Parent().IsValid() {
		t.Errorf("a skynet-form tag became a parent: %v", other.Parent())
	}
	if got, ok := testkit.SpanAttr(other, "skynet.trace_tag"); !ok || got != "(:01000002-:01000010-7)" {
		t.Errorf("skynet.trace_tag = %q, want skynet's tag kept", got)
	}
	if other.Status().Code != codes.Error {
		t.Errorf("failed handler's span status = %v, want Error", other.Status())
	}
}

func TestServerWithoutTracerProviderStartsNoSpan(t *testing.T) {
	s := New("node-a")
	spans := make(chan trace.SpanContext, 1)
	mustHandle(t, s, "@echo", func(ctx context.Context, req *Request) ([]byte, error) {
		spans <- trace.SpanContextFromContext(ctx)
		return nil, nil
	})
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)
	c.Call(wire.Request{Name: "@echo", Trace: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")})
	if sc := testkit.Recv(t, "the handler's ctx", spans); sc.IsValid() {
		t.Errorf("a Server without a TracerProvider put span %v in the handler's ctx", sc)
	}
}

// TestServerFindsTraceparentBehindSkynetsHopPrefix: skynet's clustersender
// forwards a tag it received as "(node-node-session)" + tag; the Server
// still finds the traceparent, and keeps the whole tag as an attribute.
func TestServerFindsTraceparentBehindSkynetsHopPrefix(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := New("node-a", WithTracerProvider(tp))
	mustHandle(t, s, "@echo", echo)
	addr, _ := serveTest(t, s)
	c := testkit.Dial(t, addr)
	const tag = "(sky-go-3)00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if resp := c.Call(wire.Request{Name: "@echo", Payload: []byte("hi"), Trace: []byte(tag)}); !resp.OK {
		t.Fatalf("call: %+v", resp)
	}
	testkit.Eventually(t, "the span exported", func() bool { return len(exp.GetSpans().Snapshots()) == 1 })
	span := exp.GetSpans().Snapshots()[0]
	if got := span.Parent(); got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("server span's parent = %v, want the traceparent behind skynet's prefix", got)
	}
	if got, _ := testkit.SpanAttr(span, "skynet.trace_tag"); got != tag {
		t.Errorf("skynet.trace_tag = %q, want %q", got, tag)
	}
}
