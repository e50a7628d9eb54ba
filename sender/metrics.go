package sender

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Call results, the "result" label of skycall_sender_calls_total.
const (
	resultOK             = "ok"
	resultRemoteError    = "remote_error"
	resultDeadline       = "deadline_exceeded"
	resultCanceled       = "canceled"
	resultTimeout        = "timeout" // the Client's default call timeout
	resultConnectionLost = "connection_lost"
	resultNodeDown       = "node_down"
	resultUnknownNode    = "unknown_node"
	resultQueueFull      = "queue_full"
	resultClosed         = "closed"
	resultTooLarge       = "too_large"
	resultRegistry       = "registry_error"
)

// callResults are every "result" label value, for deleting a node's series.
var callResults = [...]string{resultOK, resultRemoteError, resultDeadline, resultCanceled, resultTimeout,
	resultConnectionLost, resultNodeDown, resultUnknownNode, resultQueueFull, resultClosed, resultTooLarge, resultRegistry}

// Reasons a Send is dropped, the "reason" label of skycall_sender_dropped_total.
const (
	dropNodeDown       = "node_down"
	dropClosed         = "closed"
	dropUnknownNode    = "unknown_node"
	dropRegistry       = "registry_error"
	dropConnectionLost = "connection_lost"
	dropRejected       = "rejected"
)

var dropReasons = [...]string{dropNodeDown, dropClosed, dropUnknownNode, dropRegistry, dropConnectionLost, dropRejected}

// clientMetrics are a Client's Prometheus metrics. Gauges (state, queue
// depth) are read from the nodes at scrape time: the state series are
// node.state, which only node.setStateLocked writes, so they cannot
// disagree with the transition log, and no per-node gauge children are kept
// (eight per node would cost about 3 KiB each). Counters and the histogram
// are kept per node in cached children so that the hot path does one atomic
// add, or nothing (batch counts are added by the writer).
type clientMetrics struct {
	c *Client

	state      *prometheus.Desc
	queueMsgs  *prometheus.Desc
	queueBytes *prometheus.Desc

	queueWait    *prometheus.HistogramVec
	calls        *prometheus.CounterVec
	written      *prometheus.CounterVec
	writtenBytes *prometheus.CounterVec
	readBytes    *prometheus.CounterVec
	reconnects   *prometheus.CounterVec
	dropped      *prometheus.CounterVec
}

// nodeMetrics are one node's cached metric children.
type nodeMetrics struct {
	callsOK      prometheus.Counter
	callsRemote  prometheus.Counter
	written      prometheus.Counter
	writtenBytes prometheus.Counter
	readBytes    prometheus.Counter
	reconnects   prometheus.Counter
	queueWait    prometheus.Observer
}

func newClientMetrics(c *Client) *clientMetrics {
	node := []string{"node"}
	return &clientMetrics{
		c: c,
		state: prometheus.NewDesc("skycall_sender_node_state",
			"Connection state of a node: 1 for the current state (idle, resolving, connecting, confirming, ready, backoff, down, closed), 0 for the others.",
			[]string{"node", "state"}, nil),
		queueMsgs: prometheus.NewDesc("skycall_sender_queue_messages",
			"Messages waiting for a node: queued until it is ready, or waiting for the connection's writer.", node, nil),
		queueBytes: prometheus.NewDesc("skycall_sender_queue_bytes",
			"Payload bytes waiting for a node.", node, nil),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skycall_sender_queue_wait_seconds",
			Help:    "How long messages queued while a node was not ready waited before being handed to its connection.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, node),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_sender_calls_total",
			Help: "Calls by node and result (ok, remote_error, deadline_exceeded, canceled, timeout, connection_lost, node_down, unknown_node, queue_full, closed, too_large, registry_error).",
		}, []string{"node", "result"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_sender_written_messages_total",
			Help: "Requests and pushes written to a node's connection.",
		}, node),
		writtenBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_sender_written_bytes_total",
			Help: "Bytes written to a node's connections, framing included.",
		}, node),
		readBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_sender_reply_bytes_total",
			Help: "Reply payload bytes received from a node.",
		}, node),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_sender_reconnects_total",
			Help: "Connection attempts to a node after its first.",
		}, node),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_sender_dropped_total",
			Help: "Sends lost after their caller had returned, by reason: node_down, closed, unknown_node, registry_error (dropped from the queue), connection_lost (written when the connection broke: may or may not have arrived), rejected (the node replied an error to the push).",
		}, []string{"node", "reason"}),
	}
}

func (m *clientMetrics) forNode(name string) nodeMetrics {
	return nodeMetrics{
		callsOK:      m.calls.WithLabelValues(name, resultOK),
		callsRemote:  m.calls.WithLabelValues(name, resultRemoteError),
		written:      m.written.WithLabelValues(name),
		writtenBytes: m.writtenBytes.WithLabelValues(name),
		readBytes:    m.readBytes.WithLabelValues(name),
		reconnects:   m.reconnects.WithLabelValues(name),
		queueWait:    m.queueWait.WithLabelValues(name),
	}
}

func (m *clientMetrics) vecs() []prometheus.Collector {
	return []prometheus.Collector{m.queueWait, m.calls, m.written, m.writtenBytes, m.readBytes, m.reconnects, m.dropped}
}

// Describe implements prometheus.Collector.
func (m *clientMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.state
	ch <- m.queueMsgs
	ch <- m.queueBytes
	for _, v := range m.vecs() {
		v.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *clientMetrics) Collect(ch chan<- prometheus.Metric) {
	m.c.nodes.Range(func(_, v any) bool {
		n := v.(*node)
		n.mu.Lock()
		st, msgs, bytes := n.state, n.quota.msgs, n.quota.bytes
		n.mu.Unlock()
		for s := StateIdle; s <= StateClosed; s++ {
			val := 0.0
			if s == st {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, val, n.name, s.String())
		}
		ch <- prometheus.MustNewConstMetric(m.queueMsgs, prometheus.GaugeValue, float64(msgs), n.name)
		ch <- prometheus.MustNewConstMetric(m.queueBytes, prometheus.GaugeValue, float64(bytes), n.name)
		return true
	})
	for _, v := range m.vecs() {
		v.Collect(ch)
	}
}
