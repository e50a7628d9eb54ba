package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The operator's own metrics, served with controller-runtime's (workqueue,
// reconcile, client) on the manager's metrics endpoint.
var (
	// clusterNodesMetric counts ClusterNodes by their Ready condition, so
	// that "how many nodes are down, and why" is one query per namespace.
	clusterNodesMetric = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "skycall_operator_clusternodes",
		Help: "ClusterNodes by namespace and Ready condition status and reason (reason \"Unknown\" before the first resolve).",
	}, []string{"namespace", "status", "reason"})

	registryGenerationMetric = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "skycall_operator_registry_generation",
		Help: "Generation of the registry document last written or found current, per namespace.",
	}, []string{"namespace"})

	// registryBytesMetric shows how close a namespace is to the 1 MiB a
	// ConfigMap may hold (RegistryMaxBytes).
	registryBytesMetric = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "skycall_operator_registry_bytes",
		Help: "Size of the registry data (clustername.lua plus nodes.json) per namespace, in bytes; the limit is about 1 MiB.",
	}, []string{"namespace"})

	sliceToRegistryMetric = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "skycall_operator_endpointslice_to_registry_seconds",
		Help: "Time from an EndpointSlice change (its endpoints.kubernetes.io/last-change-trigger-time, else when the operator saw it) " +
			"to the registry write that published it.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	})
)

func init() {
	metrics.Registry.MustRegister(clusterNodesMetric, registryGenerationMetric, registryBytesMetric, sliceToRegistryMetric)
}

// sliceChanges follows EndpointSlice changes to the registry write that
// publishes them, for skycall_operator_endpointslice_to_registry_seconds:
// a change is pending on the ClusterNodes it concerns until their
// reconcile, then, if it changed their status, pending on their
// namespace's registry until the next write. A change that alters no
// status or no registry is dropped, never counted against a later,
// unrelated write; so is one whose registry pass ran before the cache saw
// the new status (a lost sample, not a wrong one). It is shared by the two
// reconcilers (one manager per process).
var sliceChanges = &changeTracker{nodes: map[types.NamespacedName]time.Time{}, namespaces: map[string]time.Time{}}

type changeTracker struct {
	mu         sync.Mutex // guards nodes and namespaces
	nodes      map[types.NamespacedName]time.Time
	namespaces map[string]time.Time
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
		sliceToRegistryMetric.Observe(time.Since(first).Seconds())
	}
}

// readyCount is one series of skycall_operator_clusternodes.
type readyCount struct{ status, reason string }

// setClusterNodeCounts replaces namespace's series of
// skycall_operator_clusternodes with counts (none when it has no nodes).
func setClusterNodeCounts(namespace string, counts map[readyCount]int) {
	clusterNodesMetric.DeletePartialMatch(prometheus.Labels{"namespace": namespace})
	for k, n := range counts {
		clusterNodesMetric.WithLabelValues(namespace, k.status, k.reason).Set(float64(n))
	}
}

// setRegistryMetrics records the registry of namespace, or forgets it
// (removed) so that a namespace without ClusterNodes leaves no stale series.
func setRegistryMetrics(namespace string, generation int64, bytes int, removed bool) {
	if removed {
		registryGenerationMetric.DeleteLabelValues(namespace)
		registryBytesMetric.DeleteLabelValues(namespace)
		return
	}
	registryGenerationMetric.WithLabelValues(namespace).Set(float64(generation))
	registryBytesMetric.WithLabelValues(namespace).Set(float64(bytes))
}
