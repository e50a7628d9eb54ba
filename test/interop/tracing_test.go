package interop

import (
	"context"
	"net"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// tracedGo is a skycall Server tracing into its own provider (a process of
// its own would have one), with @echo replying with its payload; every
// handler's span context goes to spans.
type tracedGo struct {
	addr  string
	exp   *tracetest.InMemoryExporter
	spans chan trace.SpanContext
}

func startTracedGo(t *testing.T, name string) *tracedGo {
	t.Helper()
	g := &tracedGo{exp: tracetest.NewInMemoryExporter(), spans: make(chan trace.SpanContext, 16)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(g.exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	srv := server.New(name, server.WithTracerProvider(tp))
	if _, err := srv.HandleFunc("@echo", func(ctx context.Context, req *server.Request) ([]byte, error) {
		g.spans <- trace.SpanContextFromContext(ctx)
		return req.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return g
}

// next is the server span of the next handler run.
func (g *tracedGo) next(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	var sc trace.SpanContext
	select {
	case sc = <-g.spans:
	case <-testCtx(t).Done():
		t.Fatal("the Go service was never called")
	}
	var span sdktrace.ReadOnlySpan
	eventually(t, "the Go server span exported", func() bool {
		for _, s := range g.exp.GetSpans().Snapshots() {
			if s.SpanContext().SpanID() == sc.SpanID() {
				span = s
				return true
			}
		}
		return false
	})
	return span
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.String()
		}
	}
	return ""
}

// TestTraceCrossesGoSkynetGo: a Go Client calls a skynet service that
// calls a Go Server onward with cluster.call. skynet's clusteragent hands
// the trace tag to skynet.tracecall, the service's coroutine keeps it, and
// its clustersender writes it before the onward request as
// "(<host><pid>-go-<session>)" + the tag; the Go Server finds the traceparent behind
// that prefix. One trace id, end to end, and the Go server span is the
// child of the Go client span (skynet makes no span of its own).
func TestTraceCrossesGoSkynetGo(t *testing.T) {
	eachWay(t, func(t *testing.T, way string) {
		g := startTracedGo(t, "go")
		path := filepath.Join(t.TempDir(), "clustername.lua")
		writeClusterConfig(t, path, []registry.Entry{{Node: "go", State: registry.Ready, Address: reach(t, way, "go", g.addr)}})
		sky := startSky(t, "sky", skynetpeer.Config{Cluster: path})

		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		c := clientTo(t, "sky", sky.Addr, sender.WithTracerProvider(tp))
		ctx, root := tp.Tracer("test").Start(testCtx(t), "player-action")
		defer root.End()

		got, err := c.CallValues(ctx, "sky", "@driver", "call", "go", "@echo", "traced")
		if err != nil || !reflect.DeepEqual(got, []any{true, "traced"}) {
			t.Fatalf("Go -> skynet -> Go call: %v, %v", got, err)
		}
		server := g.next(t)
		var client sdktrace.ReadOnlySpan
		eventually(t, "the Go client span exported", func() bool {
			for _, s := range exp.GetSpans().Snapshots() {
				if s.SpanKind() == trace.SpanKindClient {
					client = s
					return true
				}
			}
			return false
		})
		tag := spanAttr(server, "skynet.trace_tag")
		t.Logf("client span %s/%s; skynet forwarded the tag %q", client.SpanContext().TraceID(), client.SpanContext().SpanID(), tag)
		if server.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Fatalf("Go server span in trace %s, want the caller's trace %s: the trace broke in skynet (tag %q)",
				server.SpanContext().TraceID(), root.SpanContext().TraceID(), tag)
		}
		if server.Parent().SpanID() != client.SpanContext().SpanID() {
			t.Errorf("Go server span's parent = %s, want the Go client span %s", server.Parent().SpanID(), client.SpanContext().SpanID())
		}
		traceparent := "00-" + client.SpanContext().TraceID().String() + "-" + client.SpanContext().SpanID().String() + "-01"
		// clustersender's "(%s-%s-%d)": the skynet process (host name and pid,
		// cluster.nodename), the target node, and its next session.
		if !regexp.MustCompile(`^\([^()]+-go-\d+\)`).MatchString(tag) || !strings.HasSuffix(tag, ")"+traceparent) {
			t.Errorf("skynet forwarded %q, want (<skynet node>-go-<session>)%s", tag, traceparent)
		}
		// skynet's own trace log shows the hop, under the same traceparent.
		if _, err := sky.WaitLog(testCtx(t), regexp.MustCompile(`<TRACE `+regexp.QuoteMeta(traceparent)+`> \d+ request`)); err != nil {
			t.Errorf("skynet's log has no trace line for %s: %v", traceparent, err)
		}
	})
}

// TestTraceBreaksAtSkynetsClusterSend pins where skynet does not carry a
// trace: a traced skynet service's cluster.send (clustersender's push
// command writes no tag), so the Go push handler starts a new trace.
func TestTraceBreaksAtSkynetsClusterSend(t *testing.T) {
	g := startTracedGo(t, "go")
	path := filepath.Join(t.TempDir(), "clustername.lua")
	writeClusterConfig(t, path, []registry.Entry{{Node: "go", State: registry.Ready, Address: g.addr}})
	sky := startSky(t, "sky", skynetpeer.Config{Cluster: path})
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := clientTo(t, "sky", sky.Addr, sender.WithTracerProvider(tp))
	ctx, root := tp.Tracer("test").Start(testCtx(t), "player-action")
	defer root.End()

	if got, err := c.CallValues(ctx, "sky", "@driver", "send", "go", "@echo", "pushed"); err != nil || !reflect.DeepEqual(got, []any{true}) {
		t.Fatalf("driver send: %v, %v", got, err)
	}
	server := g.next(t)
	if server.Parent().IsValid() || server.SpanContext().TraceID() == root.SpanContext().TraceID() {
		t.Errorf("the push skynet's cluster.send made is in the caller's trace (parent %v): skynet now forwards push tags; update docs/tracing.md", server.Parent())
	}
	if tag := spanAttr(server, "skynet.trace_tag"); tag != "" {
		t.Errorf("the push carried the tag %q, want none", tag)
	}
}

// TestSkynetKeepsAPushTagForTheNextCall shows, on the real skynet, why a
// Client writes no tag before a push to skynet: clusteragent ignores the
// tag of a push but does not clear it, so the next call on the connection,
// untraced, runs under the push's trace. The second half checks the
// Client's traced Send leaves the next untraced call untraced.
func TestSkynetKeepsAPushTagForTheNextCall(t *testing.T) {
	g := startTracedGo(t, "go")
	path := filepath.Join(t.TempDir(), "clustername.lua")
	writeClusterConfig(t, path, []registry.Entry{{Node: "go", State: registry.Ready, Address: g.addr}})
	sky := startSky(t, "sky", skynetpeer.Config{Cluster: path})

	const pushTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := func(r wire.Request) []byte {
		b, err := wire.AppendRequest(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	exchange(t, sky.Addr, [][]byte{
		req(wire.Request{Name: "@echo", Session: 1, Push: true, Payload: mustPack(t, "push"), Trace: []byte(pushTrace)}),
		req(wire.Request{Name: "@driver", Session: 2, Payload: mustPack(t, "call", "go", "@echo", "untraced")}),
	}, 1)
	leaked := g.next(t)
	if got := leaked.Parent().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the untraced call after a traced push reached Go with parent trace %q, want the push's: skynet no longer keeps a push's tag", got)
	}

	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := clientTo(t, "sky", sky.Addr, sender.WithTracerProvider(tp))
	ctx, root := tp.Tracer("test").Start(testCtx(t), "player-action")
	defer root.End()
	if err := c.SendValues(ctx, "sky", "@echo", "push"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.CallValues(testCtx(t), "sky", "@driver", "call", "go", "@echo", "untraced"); err != nil || !reflect.DeepEqual(got, []any{true, "untraced"}) {
		t.Fatalf("driver call: %v, %v", got, err)
	}
	if after := g.next(t); after.Parent().IsValid() {
		t.Errorf("an untraced call after the Client's traced Send ran under trace %s, want none", after.Parent().TraceID())
	}
}
