package server

import (
	"bytes"
	"context"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/skycall-io/skycall/sender/internal/telemetry"
)

// WithTracerProvider makes the Server start a span (kind server) around
// every handler, with the handler's ctx carrying it. When the request's
// trace tag (skynet's request type 0x04) holds a W3C traceparent, the span
// is its child, so that one trace follows a message across nodes; any other
// tag, such as skynet's own "(node-node-session)", is kept as the
// attribute skynet.trace_tag. A traceparent that skynet passed on, behind
// its "(node-node-session)" prefix, is both: the parent, and the attribute.
// Without a provider the Server starts no spans and reads no tags.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// traceTagCarrier presents a trace tag as the "traceparent" header to the
// W3C propagator.
type traceTagCarrier []byte

func (c traceTagCarrier) Get(key string) string {
	if key == "traceparent" {
		return string(c)
	}
	return ""
}
func (traceTagCarrier) Set(string, string) {}
func (traceTagCarrier) Keys() []string     { return []string{"traceparent"} }

// skynetHopless returns tag without the "(node-node-session)" prefix
// skynet's clustersender puts before a tag it forwards on a cluster.call
// (service/clustersender.lua: "(%s-%s-%d)%s"), so that a traceparent a Go
// Client sent to skynet, and skynet passed on to this Server, is still
// found: one trace crosses Go, skynet and Go again.
func skynetHopless(tag []byte) []byte {
	if len(tag) > 0 && tag[0] == '(' {
		if i := bytes.LastIndexByte(tag, ')'); i > 0 {
			return tag[i+1:]
		}
	}
	return tag
}

// startSpan starts the server span of req, if the Server traces.
func (s *Server) startSpan(ctx context.Context, req *Request) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, nil
	}
	kind := telemetry.KindCall
	if req.Push {
		kind = telemetry.KindPush
	}
	attrs := []attribute.KeyValue{
		attribute.String("rpc.system", "skynet"),
		attribute.String("rpc.service", req.Service),
		attribute.String("skycall.node", s.nodeName),
		attribute.String("skycall.kind", kind),
		attribute.Int("skycall.payload_size", len(req.Payload)),
		attribute.String("network.peer.address", req.RemoteAddr.String()),
	}
	if req.Trace != nil {
		parent := propagation.TraceContext{}.Extract(ctx, traceTagCarrier(skynetHopless(req.Trace)))
		valid := trace.SpanContextFromContext(parent).IsValid()
		if valid {
			ctx = parent
		}
		if !valid || req.Trace[0] == '(' {
			attrs = append(attrs, attribute.String("skynet.trace_tag", string(req.Trace)))
		}
	}
	if !req.Push {
		attrs = append(attrs, attribute.String("skycall.session", strconv.FormatUint(uint64(req.Session), 10)))
	}
	return s.tracer.Start(ctx, req.Service, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// endSpan ends span (nil when the Server does not trace) with the
// handler's outcome.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
