package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/internal/testkit"
	registrypkg "github.com/skycall-io/skycall/sender/registry"
)

// metricFamily gathers the operator's metrics registry (what the manager's
// /metrics endpoint serves) and returns the named family's series.
func metricFamily(t *testing.T, name string) []*dto.Metric {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

// series finds the first series of name in the operator's registry whose
// labels include want; nil if none.
func series(t *testing.T, name string, want map[string]string) *dto.Metric {
	t.Helper()
	if ms := testkit.Series(t, metrics.Registry, name, want); len(ms) > 0 {
		return ms[0]
	}
	return nil
}

// expectGauge waits until the gauge series has value want (want < 0: the
// series is absent).
func expectGauge(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	eventually(t, wait, func() error {
		m := series(t, name, labels)
		switch {
		case m == nil && want < 0:
			return nil
		case m == nil:
			return fmt.Errorf("%s%v absent, want %v", name, labels, want)
		case want < 0:
			return fmt.Errorf("%s%v = %v, want no series", name, labels, m.GetGauge().GetValue())
		case m.GetGauge().GetValue() != want:
			return fmt.Errorf("%s%v = %v, want %v", name, labels, m.GetGauge().GetValue(), want)
		}
		return nil
	})
}

func TestClusterNodesAreCountedByReadyReasonPerNamespace(t *testing.T) {
	ns := newNamespace(t)
	create(t, addressNode(ns, "db", "10.1.2.3:2528"))
	create(t, addressNode(ns, "game", "10.1.2.4:2528"))
	down := addressNode(ns, "chat", "10.1.2.5:2528")
	down.Spec.Down = true
	create(t, down)
	create(t, serviceNode(ns, "store", "missing", intstr.FromInt32(2528), ""))
	expectReady(t, ns, "store", metav1.ConditionFalse, skycallv1.ReasonServiceNotFound, "")

	const name = "skycall_operator_clusternodes"
	expectGauge(t, name, map[string]string{"namespace": ns, "status": "True", "reason": skycallv1.ReasonResolved}, 2)
	expectGauge(t, name, map[string]string{"namespace": ns, "status": "False", "reason": skycallv1.ReasonAdministrativelyDown}, 1)
	expectGauge(t, name, map[string]string{"namespace": ns, "status": "False", "reason": skycallv1.ReasonServiceNotFound}, 1)

	// The node comes back: its old reason's series goes, not to 0 but away.
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "chat"}, down); err != nil {
		t.Fatal(err)
	}
	down.Spec.Down = false
	if err := k8s.Update(context.Background(), down); err != nil {
		t.Fatal(err)
	}
	expectGauge(t, name, map[string]string{"namespace": ns, "status": "True", "reason": skycallv1.ReasonResolved}, 3)
	expectGauge(t, name, map[string]string{"namespace": ns, "reason": skycallv1.ReasonAdministrativelyDown}, -1)

	// A namespace without ClusterNodes has no series at all.
	for _, n := range []string{"db", "game", "chat", "store"} {
		if err := k8s.Delete(context.Background(), addressNode(ns, n, "")); err != nil {
			t.Fatal(err)
		}
	}
	expectGauge(t, name, map[string]string{"namespace": ns}, -1)
	expectGauge(t, "skycall_operator_registry_generation", map[string]string{"namespace": ns}, -1)
}

func TestRegistryGenerationAndSizeAreExported(t *testing.T) {
	ns := newNamespace(t)
	create(t, addressNode(ns, "db", "10.1.2.3:2528"))
	expectRegistryLines(t, ns, `db = "10.1.2.3:2528"`)
	eventually(t, wait, func() error {
		var cm corev1.ConfigMap
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: registrypkg.ConfigMapName}, &cm); err != nil {
			return err
		}
		_, doc, err := registry(ns)
		if err != nil {
			return err
		}
		size := len(cm.Data[registrypkg.ConfigMapLuaKey]) + len(cm.Data[registrypkg.ConfigMapJSONKey])
		gen := series(t, "skycall_operator_registry_generation", map[string]string{"namespace": ns})
		bytes := series(t, "skycall_operator_registry_bytes", map[string]string{"namespace": ns})
		if gen == nil || bytes == nil {
			return fmt.Errorf("registry metrics of %s absent", ns)
		}
		if int64(gen.GetGauge().GetValue()) != doc.Generation || int(bytes.GetGauge().GetValue()) != size {
			return fmt.Errorf("generation %v bytes %v, registry has generation %d and %d bytes",
				gen.GetGauge().GetValue(), bytes.GetGauge().GetValue(), doc.Generation, size)
		}
		return nil
	})
}

func TestEndpointSliceChangeToRegistryWriteIsObserved(t *testing.T) {
	const name = "skycall_operator_endpointslice_to_registry_seconds"
	histogram := func() (uint64, float64) {
		ms := metricFamily(t, name)
		if len(ms) == 0 {
			return 0, 0
		}
		return ms[0].GetHistogram().GetSampleCount(), ms[0].GetHistogram().GetSampleSum()
	}
	ns := newNamespace(t)
	create(t, service(ns, "store", corev1.ServicePort{Name: "cluster", Port: 2528}))
	create(t, serviceNode(ns, "store", "store", intstr.FromString("cluster"), ""))
	expectReady(t, ns, "store", metav1.ConditionFalse, skycallv1.ReasonNoReadyEndpoints, "")
	expectRegistryLines(t, ns)
	count, sum := histogram()

	// The endpoint slice controller stamps the time of the pod change that
	// caused a slice change; the delay counts from there, as kube-proxy's
	// network programming latency does.
	const lag = 90 * time.Second
	es := endpointSlice(ns, "store", "store-a", "cluster", 2528, ep{ip: "10.0.0.7", pod: "store-0", ready: true})
	es.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().Add(-lag).UTC().Format(time.RFC3339Nano)}
	create(t, es)
	expectRegistryLines(t, ns, `store = "10.0.0.7:2528"`)
	eventually(t, wait, func() error {
		c, s := histogram()
		if c != count+1 || s-sum < lag.Seconds() {
			return fmt.Errorf("%s: count %d sum %.1f, want count %d and sum grown by at least %v", name, c, s, count+1, lag)
		}
		return nil
	})

	// A slice change that does not alter the registry is no sample (nor is
	// it added to the next write's delay).
	count, sum = histogram()
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "store-a"}, es); err != nil {
		t.Fatal(err)
	}
	es.Annotations[corev1.EndpointsLastChangeTriggerTime] = time.Now().Add(-lag).UTC().Format(time.RFC3339Nano)
	es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.8"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}})
	if err := k8s.Update(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	create(t, addressNode(ns, "db", "10.1.2.3:2528"))
	expectRegistryLines(t, ns, `db = "10.1.2.3:2528"`, `store = "10.0.0.7:2528"`)
	if c, s := histogram(); c != count || s != sum {
		t.Errorf("%s: count %d sum %.1f after changes that published no slice change, want %d and %.1f", name, c, s, count, sum)
	}
}
