package relay

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
)

// Kinds of request, the "kind" label.
const (
	kindCall = "call"
	kindPush = "push"
)

// metrics are the relay's series, per destination node.
type metrics struct {
	forwarded *prometheus.CounterVec
	failed    *prometheus.CounterVec
	waiting   *prometheus.GaugeVec
	duration  *prometheus.HistogramVec
	calls     atomic.Int64 // calls waiting, over every node
}

func newMetrics() *metrics {
	return &metrics{
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_relay_forwarded_total",
			Help: "Requests from skynet the relay handed to the Client: pushes queued, calls answered by their node (remote errors included).",
		}, []string{"node", "kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_relay_failed_total",
			Help: "Requests from skynet that failed in the relay or the Client, by the Client's result label: calls got an error reply, pushes were dropped.",
		}, []string{"node", "kind", "reason"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skycall_relay_waiting_calls",
			Help: "Calls from skynet waiting in the relay for their node's reply, queued or in flight.",
		}, []string{"node"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skycall_relay_wait_seconds",
			Help:    "From a request's arrival to its reply (calls) or its place in the node's queue (pushes).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"node", "kind"}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.forwarded.Describe(ch)
	m.failed.Describe(ch)
	m.waiting.Describe(ch)
	m.duration.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.forwarded.Collect(ch)
	m.failed.Collect(ch)
	m.waiting.Collect(ch)
	m.duration.Collect(ch)
}

// waitingCalls is how many calls wait for a reply, over every node.
func (m *metrics) waitingCalls() int64 { return m.calls.Load() }

// nodeMetrics are one node's series, looked up once per connection: a
// request's end then takes no label lookup unless it failed.
type nodeMetrics struct {
	m         *metrics
	node      string
	waiting   prometheus.Gauge
	forwarded map[string]prometheus.Counter  // by kind
	duration  map[string]prometheus.Observer // by kind
}

func (m *metrics) node(node string) *nodeMetrics {
	n := &nodeMetrics{m: m, node: node, waiting: m.waiting.WithLabelValues(node),
		forwarded: map[string]prometheus.Counter{}, duration: map[string]prometheus.Observer{}}
	for _, kind := range []string{kindCall, kindPush} {
		n.forwarded[kind] = m.forwarded.WithLabelValues(node, kind)
		n.duration[kind] = m.duration.WithLabelValues(node, kind)
	}
	return n
}

// done records one request's end.
func (n *nodeMetrics) done(kind string, start time.Time, err error) {
	n.duration[kind].Observe(time.Since(start).Seconds())
	if r := sender.ResultOf(err); r != "ok" && r != "remote_error" {
		n.m.failed.WithLabelValues(n.node, kind, r).Inc()
		return
	}
	n.forwarded[kind].Inc()
}
