// Package tracing tests the sender's use of the global OpenTelemetry
// provider, in a test binary of its own: otel.SetTracerProvider cannot be
// undone, and the sender package's tests rely on it never being set.
package tracing

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
)

// TestClientTracesWithTheGlobalProviderSetAfterNew: a Client made before
// the program sets the global provider (a common order: libraries are
// built in init or early in main) traces with it once it is set.
func TestClientTracesWithTheGlobalProviderSetAfterNew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())

	srv := server.New("db", server.WithTracerProvider(tp))
	parents := make(chan trace.SpanContext, 1)
	if _, err := srv.HandleFunc("@echo", func(ctx context.Context, req *server.Request) ([]byte, error) {
		parents <- trace.SpanContextFromContext(ctx)
		return req.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	c := sender.New(registry.NewStatic(map[string]string{"db": sendertest.Serve(t, srv)}))
	defer c.Close()

	otel.SetTracerProvider(tp)
	ctx, root := tp.Tracer("test").Start(ctx, "player-action")
	defer root.End()
	if _, err := c.Call(ctx, "db", "@echo", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := <-parents; got.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("the handler runs in trace %s, want the caller's %s", got.TraceID(), root.SpanContext().TraceID())
	}
	var client sdktrace.ReadOnlySpan
	for _, s := range exp.GetSpans().Snapshots() {
		if s.SpanKind() == trace.SpanKindClient {
			client = s
		}
	}
	if client == nil || client.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Fatalf("no client span child of the caller's span among %d spans", len(exp.GetSpans()))
	}
}
