// Package telemetry holds the names the Client and the Server both give
// their spans and metrics, so that the two sides label a message alike.
package telemetry

// TracerName names the instrumentation, as OpenTelemetry asks.
const TracerName = "github.com/skycall-io/skycall/sender"

// Kinds of message, as span attributes and metric labels say them.
const (
	KindCall = "call"
	KindPush = "push"
)
