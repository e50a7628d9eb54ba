package scale

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
)

// BenchmarkClusterNodeSetScale: one ClusterNodeSet over a Service whose
// EndpointSlices list N ready pods (SKYCALL_SCALE_PODS, default 1000), in
// slices of 100 as the EndpointSlice controller writes them. It measures
// the time from creating the set to every pod's ClusterNode Ready, the
// set's status saying so, and all N nodes in the registry ConfigMap; then
// the time for one pod's replacement (terminating, gone, back with a new
// UID) to be seen as Draining and Ready again. Run with -benchtime=1x.
func BenchmarkClusterNodeSetScale(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SKYCALL_SCALE_PODS")); err == nil && v > 0 {
		n = v
	}
	k8s, mgr := startOperator(b)
	ctx := context.Background()
	const ns, perSlice = "sets", 100
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "game"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "game"},
			Ports: []corev1.ServicePort{{Name: "cluster", Port: 2526}}},
	}
	if err := k8s.Create(ctx, svc); err != nil {
		b.Fatal(err)
	}
	slices := make([]*discoveryv1.EndpointSlice, 0, (n+perSlice-1)/perSlice)
	for first := 0; first < n; first += perSlice {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("game-%03d", first/perSlice), Labels: map[string]string{discoveryv1.LabelServiceName: "game"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("cluster"), Port: ptr.To(int32(2526)), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
		for i := first; i < min(first+perSlice, n); i++ {
			es.Endpoints = append(es.Endpoints, podEndpoint(i, "a", false))
		}
		if err := k8s.Create(ctx, es); err != nil {
			b.Fatal(err)
		}
		slices = append(slices, es)
	}

	b.ResetTimer()
	start := time.Now()
	set := &skycallv1.ClusterNodeSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "game"},
		Spec: skycallv1.ClusterNodeSetSpec{
			Service:  skycallv1.SetServiceReference{Name: "game", Port: intstr.FromString("cluster")},
			NodeName: "game_{ordinal}",
		},
	}
	if err := k8s.Create(ctx, set); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 10*time.Minute, func() error {
		return setStatus(ctx, k8s, ns, int32(n), int32(n), 0, skycallv1.ReasonAllNodesReady)
	})
	setReady := time.Since(start)
	waitFor(b, 10*time.Minute, func() error {
		if ready, _, err := registryReady(ctx, k8s, ns); err != nil || ready != n {
			return fmt.Errorf("%d of %d nodes ready in the registry (%v)", ready, n, err)
		}
		return nil
	})
	inRegistry := time.Since(start)

	// One pod replaced: terminating, then back with a new UID.
	replace := func(term bool, gen string) {
		es := slices[0]
		waitFor(b, time.Minute, func() error {
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: es.Name}, es); err != nil {
				return err
			}
			es.Endpoints[0] = podEndpoint(0, gen, term)
			return k8s.Update(ctx, es)
		})
	}
	drainStart := time.Now()
	replace(true, "a")
	waitFor(b, time.Minute, func() error {
		return setStatus(ctx, k8s, ns, int32(n), int32(n-1), 1, skycallv1.ReasonNodesNotReady)
	})
	drained := time.Since(drainStart)
	backStart := time.Now()
	replace(false, "b")
	waitFor(b, time.Minute, func() error {
		return setStatus(ctx, k8s, ns, int32(n), int32(n), 0, skycallv1.ReasonAllNodesReady)
	})
	back := time.Since(backStart)
	b.StopTimer()
	rss := peakRSS(mgr.Pid())

	b.ReportMetric(setReady.Seconds(), "s-to-set-ready")
	b.ReportMetric(inRegistry.Seconds(), "s-to-registry")
	b.ReportMetric(drained.Seconds(), "s-to-draining")
	b.ReportMetric(back.Seconds(), "s-to-ready-again")
	b.Logf("ClusterNodeSet over %d pods: set Ready (all %d ClusterNodes created and Ready) after %v, all in the registry after %v",
		n, n, setReady.Round(time.Millisecond), inRegistry.Round(time.Millisecond))
	b.Logf("one pod terminating to the set counting it Draining: %v; its replacement ready to the set Ready again: %v; manager peak RSS %.1f MiB",
		drained.Round(time.Millisecond), back.Round(time.Millisecond), float64(rss)/(1<<20))
}

// podEndpoint is pod game-i's endpoint; gen picks its incarnation.
func podEndpoint(i int, gen string, terminating bool) discoveryv1.Endpoint {
	c := discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)}
	if terminating {
		c = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}
	}
	pod := fmt.Sprintf("game-%d", i)
	return discoveryv1.Endpoint{
		Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 100+i>>16&127, i>>8&255, i&255)},
		Conditions: c,
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "sets", Name: pod, UID: types.UID(pod + "-" + gen)},
	}
}

// setStatus checks the set's counts and Ready reason.
func setStatus(ctx context.Context, k8s client.Client, ns string, desired, ready, draining int32, reason string) error {
	var set skycallv1.ClusterNodeSet
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "game"}, &set); err != nil {
		return err
	}
	st := set.Status
	c := meta.FindStatusCondition(st.Conditions, skycallv1.ConditionReady)
	if c == nil || st.Desired != desired || st.Ready != ready || st.Draining != draining || c.Reason != reason {
		return fmt.Errorf("set status %+v, want desired/ready/draining %d/%d/%d reason %s", st, desired, ready, draining, reason)
	}
	return nil
}

func waitFor(b *testing.B, timeout time.Duration, cond func() error) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
