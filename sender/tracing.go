package sender

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/sender/internal/telemetry"
)

// WithTracerProvider makes the Client trace with tp instead of the global
// provider (otel.GetTracerProvider). Either way, when an OpenTelemetry SDK
// is behind the provider, a Send or Call whose ctx carries a valid span
// starts a client span, its child, and writes the W3C traceparent of that
// span as skynet's trace tag (request type 0x04) just before the message,
// so that a skycall Server (server.WithTracerProvider) continues the trace and a
// skynet node passes it on to its onward cluster.call (docs/tracing.md).
//
// Tracing is off, and no tag is written, when the ctx carries no span (the
// cost is then one context lookup, no allocation) or when no SDK is behind
// the provider: the global one left unset, or trace/noop's. Pushes to a
// skynet node carry no tag: skynet drops it and would apply it to the next
// call on the connection instead.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *clientOptions) { o.tracerProvider = tp }
}

// tracer is the Client's tracer: WithTracerProvider's, else the global
// provider's, whose tracer follows a provider set later with
// otel.SetTracerProvider.
func (o *clientOptions) tracer() trace.Tracer {
	if o.tracerProvider != nil {
		return o.tracerProvider.Tracer(telemetry.TracerName)
	}
	return otel.GetTracerProvider().Tracer(telemetry.TracerName)
}

// traceparentLen is the length of a version-00 W3C traceparent:
// "00-" trace-id "-" parent-id "-" flags.
const traceparentLen = 3 + 32 + 1 + 16 + 1 + 2

// appendTraceparent appends the W3C traceparent of sc (version 00) to dst.
func appendTraceparent(dst []byte, sc trace.SpanContext) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tid[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, sid[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, []byte{byte(sc.TraceFlags())})
}

// startClientSpan starts the client span of one message and returns the
// trace tag that carries it (nil when the span has no valid context).
func (c *Client) startClientSpan(ctx context.Context, n *node, addr uint32, name, kind string, size int, buf []byte) (trace.Span, []byte) {
	if name == "" {
		name = handleAddress(addr)
	}
	_, span := c.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("rpc.system", "skynet"),
		attribute.String("rpc.service", name),
		attribute.String("skycall.node", n.name),
		attribute.String("skycall.kind", kind),
		attribute.Int("skycall.payload_size", size),
	))
	sc := span.SpanContext()
	if !sc.IsValid() || sc.SpanID() == trace.SpanContextFromContext(ctx).SpanID() {
		// No SDK behind the tracer (the global provider unset, or a noop
		// one): it made no span of its own, and tracing is off.
		return span, nil
	}
	return span, appendTraceparent(buf, sc)
}

// endClientSpan ends span with the message's outcome: result is the
// "result" label of the call metrics (resultOK, "queued" for a Send).
func endClientSpan(span trace.Span, result string, err error) {
	if err != nil {
		if r := callResultOf(err); r != "" {
			result = r
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.SetAttributes(attribute.String("skycall.result", result))
	span.End()
}

// tracedSend is send for a ctx that carries a span.
func (c *Client) tracedSend(ctx context.Context, n *node, svc *Service, m *message, payload []byte) error {
	var buf [traceparentLen]byte
	span, tag := c.startClientSpan(ctx, n, m.addr, m.name, telemetry.KindPush, len(payload), buf[:0])
	err := c.sendTagged(ctx, n, svc, m, body{payload: payload, tag: tag})
	result := "queued" // a push gets no reply: the span ends when it is queued
	if err != nil {
		result = "error"
	}
	endClientSpan(span, result, err)
	return err
}

// tracedCall is call for a ctx that carries a span.
func (c *Client) tracedCall(ctx context.Context, n *node, svc *Service, m *message, payload, dst []byte) ([]byte, error) {
	var buf [traceparentLen]byte
	span, tag := c.startClientSpan(ctx, n, m.addr, m.name, telemetry.KindCall, len(payload), buf[:0])
	reply, err := c.callTagged(ctx, n, svc, m, body{payload: payload, tag: tag}, dst)
	result := resultOK
	if err != nil {
		result = "error"
	} else {
		span.SetAttributes(attribute.Int("skycall.reply_size", len(reply)))
	}
	endClientSpan(span, result, err)
	return reply, err
}
