package sender

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// WithMetricsNodeLabel(false) leaves the node out of the Client's metrics:
// with thousands of nodes, a series per node and result costs Prometheus
// more than the per-node detail is worth. The label stays, empty (which
// Prometheus stores as no label), and every series sums over all nodes;
// skycall_sender_node_state then counts the nodes in each state. The
// default (true) labels every series with its node.
func WithMetricsNodeLabel(on bool) Option {
	return func(o *clientOptions) { o.noNodeLabel = !on }
}

// nodeCounterVec and nodeHistogramVec are metric vectors whose first label
// is the node: with the node label off, every node's children are the one
// series labelled "", and a forgotten node deletes nothing (the series is
// every node's). WithLabelValues overwrites lvs[0]: callers pass fresh
// argument lists.
type nodeCounterVec struct {
	*prometheus.CounterVec
	noNode bool
}

func (v nodeCounterVec) WithLabelValues(lvs ...string) prometheus.Counter {
	if v.noNode {
		lvs[0] = ""
	}
	return v.CounterVec.WithLabelValues(lvs...)
}

func (v nodeCounterVec) DeleteLabelValues(lvs ...string) bool {
	return !v.noNode && v.CounterVec.DeleteLabelValues(lvs...)
}

type nodeHistogramVec struct {
	*prometheus.HistogramVec
	noNode bool
}

func (v nodeHistogramVec) WithLabelValues(lvs ...string) prometheus.Observer {
	if v.noNode {
		lvs[0] = ""
	}
	return v.HistogramVec.WithLabelValues(lvs...)
}

func (v nodeHistogramVec) DeleteLabelValues(lvs ...string) bool {
	return !v.noNode && v.HistogramVec.DeleteLabelValues(lvs...)
}

// Call results, the "result" label of skycall_sender_calls_total.
const (
	resultOK             = "ok"
	resultRemoteError    = "remote_error"
	resultDeadline       = "deadline_exceeded"
	resultCanceled       = "canceled"
	resultTimeout        = "timeout" // the Client's call timeout (WithCallTimeout)
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
	dropUnconfirmed    = "unconfirmed" // written, then the connection broke (or its closing probe went unanswered) before a reply proved it received
)

var dropReasons = [...]string{dropNodeDown, dropClosed, dropUnknownNode, dropRegistry, dropConnectionLost, dropRejected, dropUnconfirmed}

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

	noNode bool // WithMetricsNodeLabel(false)

	queueWait    nodeHistogramVec
	callTime     nodeHistogramVec
	calls        nodeCounterVec
	written      nodeCounterVec
	writtenBytes nodeCounterVec
	readBytes    nodeCounterVec
	reconnects   nodeCounterVec
	dropped      nodeCounterVec
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
	callTimeOK   prometheus.Observer
}

func newClientMetrics(c *Client) *clientMetrics {
	node := []string{"node"}
	no := c.opts.noNodeLabel
	counter := func(opts prometheus.CounterOpts, labels []string) nodeCounterVec {
		return nodeCounterVec{prometheus.NewCounterVec(opts, labels), no}
	}
	histogram := func(opts prometheus.HistogramOpts, labels []string) nodeHistogramVec {
		return nodeHistogramVec{prometheus.NewHistogramVec(opts, labels), no}
	}
	return &clientMetrics{
		c:      c,
		noNode: no,
		state: prometheus.NewDesc("skycall_sender_node_state",
			"Connection state of a node: 1 for the current state (idle, resolving, connecting, confirming, ready, backoff, down, closed), 0 for the others.",
			[]string{"node", "state"}, nil),
		queueMsgs: prometheus.NewDesc("skycall_sender_queue_messages",
			"Messages waiting for a node: queued until it is ready, or waiting for the connection's writer.", node, nil),
		queueBytes: prometheus.NewDesc("skycall_sender_queue_bytes",
			"Payload bytes waiting for a node.", node, nil),
		queueWait: histogram(prometheus.HistogramOpts{
			Name:    "skycall_sender_queue_wait_seconds",
			Help:    "How long messages queued while a node was not ready waited before being handed to its connection.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, node),
		callTime: histogram(prometheus.HistogramOpts{
			Name: "skycall_sender_call_duration_seconds",
			Help: "Time from Call to its reply or error, queueing included, by node and result (as skycall_sender_calls_total).",
			// 100 µs to about 15 s: a loopback call up to a call that waited
			// for a node's rolling restart.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"node", "result"}),
		calls: counter(prometheus.CounterOpts{
			Name: "skycall_sender_calls_total",
			Help: "Calls by node and result (ok, remote_error, deadline_exceeded, canceled, timeout, connection_lost, node_down, unknown_node, queue_full, closed, too_large, registry_error).",
		}, []string{"node", "result"}),
		written: counter(prometheus.CounterOpts{
			Name: "skycall_sender_written_messages_total",
			Help: "Requests and pushes written to a node's connection.",
		}, node),
		writtenBytes: counter(prometheus.CounterOpts{
			Name: "skycall_sender_written_bytes_total",
			Help: "Bytes written to a node's connections, framing included.",
		}, node),
		readBytes: counter(prometheus.CounterOpts{
			Name: "skycall_sender_reply_bytes_total",
			Help: "Reply payload bytes received from a node.",
		}, node),
		reconnects: counter(prometheus.CounterOpts{
			Name: "skycall_sender_reconnects_total",
			Help: "Connection attempts to a node after its first.",
		}, node),
		dropped: counter(prometheus.CounterOpts{
			Name: "skycall_sender_dropped_total",
			Help: "Sends lost after their caller had returned, by reason: node_down, closed, unknown_node, registry_error (dropped from the queue), connection_lost (in a write that failed before any byte left: never arrived), unconfirmed (written, then the connection broke, or its closing probe went unanswered, before any later reply proved it received: may or may not have arrived), rejected (the node replied an error to the push).",
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
		callTimeOK:   m.callTime.WithLabelValues(name, resultOK),
	}
}

func (m *clientMetrics) vecs() []prometheus.Collector {
	return []prometheus.Collector{m.queueWait, m.callTime, m.calls, m.written, m.writtenBytes, m.readBytes, m.reconnects, m.dropped}
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
	if m.noNode {
		m.collectAllNodes(ch)
		return
	}
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

// collectAllNodes is Collect without the node label: nodes per state, and
// the queues of all nodes summed.
func (m *clientMetrics) collectAllNodes(ch chan<- prometheus.Metric) {
	var states [StateClosed + 1]int
	var msgs, bytes int
	m.c.nodes.Range(func(_, v any) bool {
		n := v.(*node)
		n.mu.Lock()
		if n.state >= StateIdle && n.state <= StateClosed {
			states[n.state]++
		}
		msgs += n.quota.msgs
		bytes += n.quota.bytes
		n.mu.Unlock()
		return true
	})
	for s := StateIdle; s <= StateClosed; s++ {
		ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, float64(states[s]), "", s.String())
	}
	ch <- prometheus.MustNewConstMetric(m.queueMsgs, prometheus.GaugeValue, float64(msgs), "")
	ch <- prometheus.MustNewConstMetric(m.queueBytes, prometheus.GaugeValue, float64(bytes), "")
	for _, v := range m.vecs() {
		v.Collect(ch)
	}
}

// ResultOf is the "result" label the Client's metrics give a call that
// ended with err ("ok" for nil, "remote_error", "timeout", "node_down",
// ...; "other" for an error of no kind the Client knows), for what counts
// beside it, such as a relay.
func ResultOf(err error) string {
	if err == nil {
		return resultOK
	}
	if r := callResultOf(err); r != "" {
		return r
	}
	return "other"
}

// callResultOf is the "result" label of a failed call ("" for an error no
// result names).
func callResultOf(err error) string {
	var re *RemoteError
	var te *timeoutError
	switch {
	case errors.As(err, &re):
		return resultRemoteError
	case errors.As(err, &te):
		return resultTimeout
	case errors.Is(err, ErrConnectionLost):
		return resultConnectionLost
	case errors.Is(err, ErrNodeDown):
		return resultNodeDown
	case errors.Is(err, ErrUnknownNode):
		return resultUnknownNode
	case errors.Is(err, ErrQueueFull):
		return resultQueueFull
	case errors.Is(err, ErrClosed):
		return resultClosed
	case errors.Is(err, ErrRegistry):
		return resultRegistry
	case errors.Is(err, ErrMessageTooLarge):
		return resultTooLarge
	case errors.Is(err, context.DeadlineExceeded):
		return resultDeadline
	case errors.Is(err, context.Canceled):
		return resultCanceled
	}
	return ""
}
