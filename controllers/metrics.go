package controllers

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// operatorMetrics are the operator's own metrics, served with
// controller-runtime's (workqueue, reconcile, client) on the manager's
// metrics endpoint. Setup makes one and hands it to the reconcilers; a nil
// *operatorMetrics records nothing.
type operatorMetrics struct {
	// clusterNodes counts ClusterNodes by their Ready condition, so that
	// "how many nodes are down, and why" is one query per namespace.
	clusterNodes       *prometheus.GaugeVec
	registryGeneration *prometheus.GaugeVec
	// registryBytes shows how close a namespace is to the 1 MiB a
	// ConfigMap may hold (registry.ConfigMapMaxBytes).
	registryBytes   *prometheus.GaugeVec
	sliceToRegistry prometheus.Histogram
	// changes follows EndpointSlice changes to the registry writes that
	// publish them, for sliceToRegistry; shared by the two reconcilers.
	changes changeTracker
}

// newOperatorMetrics makes the operator's metrics and registers them with reg.
func newOperatorMetrics(reg prometheus.Registerer) (*operatorMetrics, error) {
	m := &operatorMetrics{
		clusterNodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skycall_operator_clusternodes",
			Help: "ClusterNodes by namespace and Ready condition status and reason (reason \"Unknown\" before the first resolve).",
		}, []string{"namespace", "status", "reason"}),
		registryGeneration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skycall_operator_registry_generation",
			Help: "Generation of the registry document last written or found current, per namespace.",
		}, []string{"namespace"}),
		registryBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skycall_operator_registry_bytes",
			Help: "Size of the registry data (clustername.lua plus nodes.json) per namespace, in bytes; the limit is about 1 MiB.",
		}, []string{"namespace"}),
		sliceToRegistry: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "skycall_operator_endpointslice_to_registry_seconds",
			Help: "Time from an EndpointSlice change (its endpoints.kubernetes.io/last-change-trigger-time, else when the operator saw it) " +
				"to the registry write that published it.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		changes: changeTracker{nodes: map[types.NamespacedName]time.Time{}, namespaces: map[string]time.Time{}},
	}
	m.changes.observe = m.sliceToRegistry.Observe
	for _, c := range []prometheus.Collector{m.clusterNodes, m.registryGeneration, m.registryBytes, m.sliceToRegistry} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register the operator's metrics: %w", err)
		}
	}
	return m, nil
}

// changeTracker follows EndpointSlice changes to the registry write that
// publishes them: a change is pending on the ClusterNodes it concerns until
// their reconcile, then, if it changed their status, pending on their
// namespace's registry until the next write. A change that alters no
// status or no registry is dropped, never counted against a later,
// unrelated write; so is one whose registry pass ran before the cache saw
// the new status (a lost sample, not a wrong one).
type changeTracker struct {
	observe func(seconds float64) // the delay of a change published

	mu         sync.Mutex // guards nodes and namespaces
	nodes      map[types.NamespacedName]time.Time
	namespaces map[string]time.Time
}

// sliceChanged records a change of the EndpointSlice o that concerns nodes.
func (m *operatorMetrics) sliceChanged(o client.Object, nodes []ctrl.Request) {
	if m != nil {
		m.changes.saw(o, nodes)
	}
}

// nodeResolved takes node's pending change: to its registry if its status
// changed, else away.
func (m *operatorMetrics) nodeResolved(node types.NamespacedName, statusChanged bool) {
	if m != nil {
		m.changes.resolved(node, statusChanged)
	}
}

// registryPublished takes namespace's pending change; wrote says whether
// the registry was written (then the delay is observed) or found current.
func (m *operatorMetrics) registryPublished(namespace string, wrote bool) {
	if m != nil {
		m.changes.published(namespace, wrote)
	}
}

// saw records a change of the EndpointSlice o that concerns nodes, at the
// time the endpoint slice controller stamped on it (what kube-proxy
// measures its programming latency from) or, without that, now.
func (t *changeTracker) saw(o client.Object, nodes []ctrl.Request) {
	at := time.Now()
	if s := o.GetAnnotations()[corev1.EndpointsLastChangeTriggerTime]; s != "" {
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil && ts.Before(at) {
			at = ts
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range nodes {
		if first, ok := t.nodes[n.NamespacedName]; !ok || at.Before(first) {
			t.nodes[n.NamespacedName] = at
		}
	}
}

// resolved takes node's pending change: to its registry if its status
// changed, else away.
func (t *changeTracker) resolved(node types.NamespacedName, statusChanged bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.nodes[node]
	if !ok {
		return
	}
	delete(t.nodes, node)
	if first, ok := t.namespaces[node.Namespace]; statusChanged && (!ok || at.Before(first)) {
		t.namespaces[node.Namespace] = at
	}
}

// published takes namespace's pending change; wrote says whether the
// registry was written (then the delay is observed) or found current.
func (t *changeTracker) published(namespace string, wrote bool) {
	t.mu.Lock()
	first, ok := t.namespaces[namespace]
	delete(t.namespaces, namespace)
	t.mu.Unlock()
	if ok && wrote {
		t.observe(time.Since(first).Seconds())
	}
}

// readyCount is one series of skycall_operator_clusternodes.
type readyCount struct{ status, reason string }

// setClusterNodeCounts replaces namespace's series of
// skycall_operator_clusternodes with counts (none when it has no nodes).
func (m *operatorMetrics) setClusterNodeCounts(namespace string, counts map[readyCount]int) {
	if m == nil {
		return
	}
	m.clusterNodes.DeletePartialMatch(prometheus.Labels{"namespace": namespace})
	for k, n := range counts {
		m.clusterNodes.WithLabelValues(namespace, k.status, k.reason).Set(float64(n))
	}
}

// setRegistryMetrics records the registry of namespace, or forgets it
// (removed) so that a namespace without ClusterNodes leaves no stale series.
func (m *operatorMetrics) setRegistry(namespace string, generation int64, bytes int, removed bool) {
	switch {
	case m == nil:
	case removed:
		m.registryGeneration.DeleteLabelValues(namespace)
		m.registryBytes.DeleteLabelValues(namespace)
	default:
		m.registryGeneration.WithLabelValues(namespace).Set(float64(generation))
		m.registryBytes.WithLabelValues(namespace).Set(float64(bytes))
	}
}
