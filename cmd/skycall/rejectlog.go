package main

import (
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
)

// rejectLog watches the sender library's log for a push the node rejected
// ("Node rejected a push"): the library counts and logs it, since a push's
// caller has normally gone, but `skycall send` is still there to tell the
// user. Everything is also passed on to the -v logger.
type rejectLog struct {
	mu       sync.Mutex // guards messages
	messages []string
	root     logr.LogSink // the -v logger's sink; nil when discarding
}

func newRejectLog(next logr.Logger) *rejectLog { return &rejectLog{root: next.GetSink()} }

func (r *rejectLog) logger() logr.Logger { return logr.New(rejectSink{log: r, next: r.root}) }

// rejected returns an error wrapping a *sender.RemoteError if the node
// rejected a push: counted in the Client's metrics (gathered from reg), with
// the node's text when the library's log (rate-limited to one a second per
// process) carried it.
func (r *rejectLog) rejected(reg prometheus.Gatherer, node, addr string) error {
	if droppedRejected(reg, node) == 0 {
		return nil
	}
	// The library logs at most one rejection a second per process, so a
	// second one in the same process (tests) has no text.
	text := "rejected (reason not captured)"
	r.mu.Lock()
	if len(r.messages) > 0 {
		text = r.messages[0]
	}
	r.mu.Unlock()
	return fmt.Errorf("%w (the node rejected the message: is %s the name of a service there?)", &sender.RemoteError{Node: node, Address: addr, Message: text}, addr)
}

// droppedRejected reads skycall_sender_dropped_total{node,reason="rejected"}.
func droppedRejected(reg prometheus.Gatherer, node string) float64 {
	families, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, f := range families {
		if f.GetName() != "skycall_sender_dropped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["node"] == node && labels["reason"] == "rejected" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// rejectSink is one (possibly named) logger of the library's; all report
// to the same rejectLog.
type rejectSink struct {
	log  *rejectLog
	next logr.LogSink
}

func (s rejectSink) Init(info logr.RuntimeInfo) {
	if s.next != nil {
		s.next.Init(info)
	}
}

func (s rejectSink) Enabled(level int) bool {
	return level == 0 || (s.next != nil && s.next.Enabled(level))
}

func (s rejectSink) Info(level int, msg string, kv ...any) {
	if msg == "Node rejected a push" {
		text := "rejected"
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == "message" {
				text = fmt.Sprint(kv[i+1])
			}
		}
		s.log.mu.Lock()
		s.log.messages = append(s.log.messages, text)
		s.log.mu.Unlock()
	}
	if s.next != nil && s.next.Enabled(level) {
		s.next.Info(level, msg, kv...)
	}
}

func (s rejectSink) Error(err error, msg string, kv ...any) {
	if s.next != nil {
		s.next.Error(err, msg, kv...)
	}
}

func (s rejectSink) WithValues(kv ...any) logr.LogSink {
	if s.next != nil {
		s.next = s.next.WithValues(kv...)
	}
	return s
}

func (s rejectSink) WithName(name string) logr.LogSink {
	if s.next != nil {
		s.next = s.next.WithName(name)
	}
	return s
}
