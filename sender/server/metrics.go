package server

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender/internal/telemetry"
	"github.com/skycall-io/skycall/sender/wire"
)

// WithRegisterer registers the Server's metrics (skycall_server_*) with
// r; Close unregisters them. By default none are registered, so that
// several Servers in one process do not collide; give each its own
// Registerer (prometheus.WrapRegistererWith can add a distinguishing label).
// Without one the Server records nothing: handling a message costs no clock
// reads or atomic adds.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.registerer = r }
}

// Reasons the Server refuses a message before any handler sees it, the
// "reason" label of skycall_server_rejected_total.
const (
	rejectUnknownName  = "unknown_name"  // no service by that name or handle
	rejectTooLarge     = "too_large"     // over WithMaxMessageSize
	rejectMalformed    = "malformed"     // a frame or multipart sequence that does not decode
	rejectBusy         = "busy"          // the reassembly budget of all connections is spent
	rejectShuttingDown = "shutting_down" // received while the Server stopped
)

// metrics are a Server's metrics. Queue depths and open connections are
// read at scrape time; per-service counters and histograms are cached
// children (serviceMetrics), so that handling a message costs atomic
// adds and no allocation.
type metrics struct {
	s *Server

	queue *prometheus.Desc
	conns *prometheus.Desc

	handled   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	bytesIn   *prometheus.CounterVec
	bytesOut  *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	rejectBy  map[string]prometheus.Counter // cached children of rejected
	collected []prometheus.Collector
}

// serviceMetrics are one service's cached children.
type serviceMetrics struct {
	ok, failed        [2]prometheus.Counter  // by kind: 0 call, 1 push
	duration          [2]prometheus.Observer // by kind
	bytesIn, bytesOut prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		s: s,
		queue: prometheus.NewDesc("skycall_server_queue_messages",
			"Messages waiting for a service's handler (a sequential service's queue) or being handled (a WithConcurrent service's running handlers).",
			[]string{"service"}, nil),
		conns: prometheus.NewDesc("skycall_server_connections_open",
			"Connections the Server has open.", nil, nil),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_server_messages_total",
			Help: "Messages handled by service, kind (call, push) and result (ok, error: the handler returned an error or panicked).",
		}, []string{"service", "kind", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skycall_server_handler_duration_seconds",
			Help:    "Time a service's handler took, by service and kind.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 14),
		}, []string{"service", "kind"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_server_request_bytes_total",
			Help: "Request payload bytes handed to a service.",
		}, []string{"service"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_server_reply_bytes_total",
			Help: "Reply payload bytes a service's calls answered (errors included).",
		}, []string{"service"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_server_rejected_total",
			Help: "Messages refused before any handler saw them, by reason: unknown_name, too_large, malformed, busy (reassembly budget spent), shutting_down.",
		}, []string{"reason"}),
	}
	m.rejectBy = map[string]prometheus.Counter{}
	for _, r := range []string{rejectUnknownName, rejectTooLarge, rejectMalformed, rejectBusy, rejectShuttingDown} {
		m.rejectBy[r] = m.rejected.WithLabelValues(r)
	}
	m.collected = []prometheus.Collector{m.handled, m.duration, m.bytesIn, m.bytesOut, m.rejected}
	return m
}

// forService returns name's cached children, or nil when the Server has no
// Registerer: then handling a message records nothing, and costs nothing.
func (m *metrics) forService(name string) *serviceMetrics {
	if m.s.opts.registerer == nil {
		return nil
	}
	sm := &serviceMetrics{
		bytesIn:  m.bytesIn.WithLabelValues(name),
		bytesOut: m.bytesOut.WithLabelValues(name),
	}
	for i, kind := range [2]string{telemetry.KindCall, telemetry.KindPush} {
		sm.ok[i] = m.handled.WithLabelValues(name, kind, "ok")
		sm.failed[i] = m.handled.WithLabelValues(name, kind, "error")
		sm.duration[i] = m.duration.WithLabelValues(name, kind)
	}
	return sm
}

// reject counts a message refused for reason.
func (m *metrics) reject(reason string) {
	if m.s.opts.registerer != nil {
		m.rejectBy[reason].Inc()
	}
}

// handled records one message a handler finished.
func (sm *serviceMetrics) handled(push bool, start time.Time, err error, in, out int) {
	if sm == nil {
		return
	}
	k := 0
	if push {
		k = 1
	}
	sm.duration[k].Observe(time.Since(start).Seconds())
	if err != nil {
		sm.failed[k].Inc()
	} else {
		sm.ok[k].Inc()
	}
	sm.bytesIn.Add(float64(in))
	if out > 0 {
		sm.bytesOut.Add(float64(out))
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queue
	ch <- m.conns
	for _, c := range m.collected {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for name, svc := range m.s.services.Load().byName {
		depth := len(svc.sem)
		if !svc.concurrent {
			depth = len(svc.waiting)
		}
		ch <- prometheus.MustNewConstMetric(m.queue, prometheus.GaugeValue, float64(depth), name)
	}
	m.s.mu.Lock()
	open := len(m.s.conns)
	m.s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.conns, prometheus.GaugeValue, float64(open))
	for _, c := range m.collected {
		c.Collect(ch)
	}
}

// rejectReason is the "reason" label of a request the decoder refused.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, wire.ErrMessageTooLarge):
		return rejectTooLarge
	case errors.Is(err, wire.ErrBudget):
		return rejectBusy
	}
	return rejectMalformed
}

func (s *Server) registerMetrics() {
	if r := s.opts.registerer; r != nil {
		if err := r.Register(s.metrics); err != nil {
			s.log.Error(err, "Server metrics not registered; give each Server its own Registerer")
			s.opts.registerer = nil
		}
	}
}

func (s *Server) unregisterMetrics() {
	if r := s.opts.registerer; r != nil {
		r.Unregister(s.metrics)
	}
}
