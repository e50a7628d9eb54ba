package sender

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/skycall-io/skycall/sender/registry"
)

// trBenchCases are the ways a message meets tracing: off (no provider, no
// span: BenchmarkSend and BenchmarkCall), a provider set but a ctx without a
// span (the off path of a traced program), and on (an SDK recording a
// sampled span per message, exported synchronously to a discarding
// exporter, and the tag on the wire).
func trBenchCases(b *testing.B) []struct {
	name string
	opts []Option
	ctx  context.Context
} {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	traced, span := tp.Tracer("bench").Start(context.Background(), "bench")
	b.Cleanup(func() { span.End() })
	return []struct {
		name string
		opts []Option
		ctx  context.Context
	}{
		{"off", nil, context.Background()},
		{"provider_no_span", []Option{WithTracerProvider(tp)}, context.Background()},
		{"on", []Option{WithTracerProvider(tp)}, traced},
	}
}

func trBenchClient(b *testing.B, opts ...Option) *Client {
	addr, _ := ctBenchPeer(b)
	c := New(registry.NewStatic(map[string]string{"db": addr}), opts...)
	b.Cleanup(func() { c.Close() })
	if _, err := c.Call(context.Background(), "db", "@echo", []byte("warm")); err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkSendTracing(b *testing.B) {
	for _, tc := range trBenchCases(b) {
		b.Run(tc.name, func(b *testing.B) {
			svc := trBenchClient(b, tc.opts...).Service("db", "@sink")
			payload := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := svc.Send(tc.ctx, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCallTracing(b *testing.B) {
	for _, tc := range trBenchCases(b) {
		b.Run(tc.name, func(b *testing.B) {
			svc := trBenchClient(b, tc.opts...).Service("db", "@echo")
			payload := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := svc.Call(tc.ctx, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSendClientOnlyTracing measures the Client's side alone (the
// peer discards), so allocs/op are the Client's own.
func BenchmarkSendClientOnlyTracing(b *testing.B) {
	for _, tc := range trBenchCases(b) {
		b.Run(tc.name, func(b *testing.B) {
			c := ctDiscardClient(b, tc.opts...)
			svc := c.Service("db", "@sink")
			payload := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := svc.Send(tc.ctx, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
