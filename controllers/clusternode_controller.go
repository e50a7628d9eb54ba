// Package controllers is the skycall operator's reconcilers: a
// ClusterNodeSet into one ClusterNode per pod of its Service, each
// ClusterNode into its status (Ready, address), and the ClusterNodes of a
// namespace into its registry ConfigMap (skynet's cluster config and
// nodes.json). Setup wires them into a manager.
package controllers

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/sender/clusterconfig"
)

// Field indexes on ClusterNodes, so that a Service, an EndpointSlice or a
// node name maps back to the ClusterNodes that depend on it.
const (
	indexServiceName = "spec.service.name"
	indexServicePod  = "spec.service.name/pod" // "svc/pod", or "svc/*" for a node following every pod
	indexNodeName    = "status.effectiveNodeName"
)

// servicePodKey is a value of indexServicePod; pod "" means every pod.
func servicePodKey(svc, pod string) string {
	if pod == "" {
		pod = "*"
	}
	return svc + "/" + pod
}

// conflictRetry is how soon an object is reconciled again after a write
// lost to a concurrent one.
const conflictRetry = 100 * time.Millisecond

// ClusterNodeReconciler computes each ClusterNode's status from the current
// objects: its spec, the Service it names and that Service's EndpointSlices.
type ClusterNodeReconciler struct {
	client.Client
	// Workers is how many ClusterNodes are reconciled at once.
	Workers int
	// Recorder, if set, records an Event when a node's Ready condition
	// changes status or reason (but not for a node Ready from the start).
	Recorder events.EventRecorder

	metrics *operatorMetrics // set by Setup; nil records nothing
}

// +kubebuilder:rbac:groups=cluster.skycall.io,resources=clusternodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=cluster.skycall.io,resources=clusternodes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one ClusterNode's status up to date. It is level-based:
// it reads the current objects and writes status only when it changed.
func (r *ClusterNodeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var node skycallv1.ClusterNode
	if err := r.Get(ctx, req.NamespacedName, &node); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !node.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	before := node.Status.DeepCopy()
	if err := r.resolve(ctx, &node); err != nil {
		return ctrl.Result{}, err
	}
	if equality.Semantic.DeepEqual(before, &node.Status) {
		r.metrics.nodeResolved(req.NamespacedName, false)
		return ctrl.Result{}, nil
	}
	if err := r.Status().Update(ctx, &node); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// A newer version is on its way through the cache; look again
			// shortly (a status-only change by someone else would not
			// trigger a reconcile by itself).
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	r.metrics.nodeResolved(req.NamespacedName, true)
	ready := meta.FindStatusCondition(node.Status.Conditions, skycallv1.ConditionReady)
	log.FromContext(ctx).V(1).Info("Status updated", "node", node.Status.NodeName,
		"address", node.Status.Address, "ready", ready.Status, "reason", ready.Reason)
	was := meta.FindStatusCondition(before.Conditions, skycallv1.ConditionReady)
	changed := was == nil || was.Status != ready.Status || was.Reason != ready.Reason
	// Sparingly: a node resolved at its first reconcile is no news.
	if r.Recorder != nil && changed && (was != nil || ready.Status != metav1.ConditionTrue) {
		kind := corev1.EventTypeWarning
		if ready.Status == metav1.ConditionTrue || ready.Reason == skycallv1.ReasonDraining {
			// A pod draining is a rollout going as planned.
			kind = corev1.EventTypeNormal
		}
		r.Recorder.Eventf(&node, nil, kind, ready.Reason, "Resolve", "%s", ready.Message)
	}
	return ctrl.Result{}, nil
}

// outcome is the Ready condition and addresses resolve settles on.
type outcome struct {
	ready     bool
	reason    string
	message   string
	endpoints []skycallv1.Endpoint
}

// resolve fills node.Status from the spec and the current cluster objects.
func (r *ClusterNodeReconciler) resolve(ctx context.Context, node *skycallv1.ClusterNode) error {
	name := node.EffectiveNodeName()
	out, err := r.decide(ctx, node, name)
	if err != nil {
		return err
	}

	st := &node.Status
	st.NodeName = name
	st.ObservedGeneration = node.Generation
	st.Endpoints = out.endpoints
	st.Address = ""
	if out.ready {
		st.Address = pickAddress(node.Status.Address, out.endpoints)
	}
	status := metav1.ConditionFalse
	if out.ready {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               skycallv1.ConditionReady,
		Status:             status,
		Reason:             out.reason,
		Message:            out.message,
		ObservedGeneration: node.Generation,
	})
	return nil
}

func (r *ClusterNodeReconciler) decide(ctx context.Context, node *skycallv1.ClusterNode, name string) (outcome, error) {
	var peers skycallv1.ClusterNodeList
	if err := r.List(ctx, &peers, client.InNamespace(node.Namespace), client.MatchingFields{indexNodeName: name}); err != nil {
		return outcome{}, err
	}
	var others []string
	for i := range peers.Items {
		if peers.Items[i].UID != node.UID && peers.Items[i].DeletionTimestamp.IsZero() {
			others = append(others, peers.Items[i].Name)
		}
	}
	if len(others) > 0 {
		slices.Sort(others)
		return outcome{reason: skycallv1.ReasonNameConflict, message: fmt.Sprintf(
			"node name %q is also claimed by ClusterNode %s; give each ClusterNode a unique spec.nodeName",
			name, strings.Join(others, ", "))}, nil
	}

	// The CRD rejects reserved names and malformed addresses; an object
	// stored before those rules gets a status saying so, and no sender uses
	// it (kube.EntryOf applies the same checks to whatever status says).
	if err := clusterconfig.CheckNodeName(name); err != nil {
		return outcome{reason: skycallv1.ReasonInvalidNodeName, message: err.Error() + "; set spec.nodeName to another name"}, nil
	}
	if node.Spec.Down {
		return outcome{reason: skycallv1.ReasonAdministrativelyDown,
			message: "spec.down is true: senders fail fast until it is cleared"}, nil
	}
	if node.Spec.Address != "" {
		if err := clusterconfig.CheckAddress(node.Spec.Address); err != nil {
			return outcome{reason: skycallv1.ReasonInvalidSpec, message: "spec." + err.Error()}, nil
		}
		return outcome{ready: true, reason: skycallv1.ReasonResolved,
			message:   "fixed address " + node.Spec.Address,
			endpoints: []skycallv1.Endpoint{{Address: node.Spec.Address}}}, nil
	}
	if node.Spec.Service == nil {
		// The CRD rejects this; an object stored before validation existed
		// still gets a clear status.
		return outcome{reason: skycallv1.ReasonInvalidSpec, message: "exactly one of spec.address or spec.service must be set"}, nil
	}
	return r.resolveService(ctx, node.Namespace, node.Spec.Service)
}

func (r *ClusterNodeReconciler) resolveService(ctx context.Context, ns string, ref *skycallv1.ServiceReference) (outcome, error) {
	var svc corev1.Service
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return outcome{reason: skycallv1.ReasonServiceNotFound,
				message: fmt.Sprintf("Service %s/%s not found", ns, ref.Name)}, nil
		}
		return outcome{}, err
	}
	port, ok := findServicePort(&svc, ref.Port)
	if !ok {
		return outcome{reason: skycallv1.ReasonPortNotFound,
			message: fmt.Sprintf("Service %s/%s has no port %s (it has %s)", ns, ref.Name, ref.Port.String(), describePorts(&svc))}, nil
	}

	var slices discoveryv1.EndpointSliceList
	if err := r.List(ctx, &slices, client.InNamespace(ns),
		client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return outcome{}, err
	}
	eps := nodeEndpoints(slices.Items, port.Name, ref.Pod)
	ready, terminating := 0, 0
	for _, ep := range eps {
		if ep.Terminating {
			terminating++
		} else {
			ready++
		}
	}
	for_ := ""
	if ref.Pod != "" {
		for_ = " for pod " + ref.Pod
	}
	switch {
	case ready > 0:
		return outcome{ready: true, reason: skycallv1.ReasonResolved,
			message:   fmt.Sprintf("%d ready endpoint(s) of Service %s", ready, ref.Name),
			endpoints: eps}, nil
	case terminating > 0:
		return outcome{reason: skycallv1.ReasonDraining, endpoints: eps, message: fmt.Sprintf(
			"Service %s/%s port %s has no ready endpoint%s, and %d terminating: senders hold new messages for a replacement",
			ns, ref.Name, ref.Port.String(), for_, terminating)}, nil
	}
	return outcome{reason: skycallv1.ReasonNoReadyEndpoints, message: fmt.Sprintf(
		"Service %s/%s port %s has no ready endpoint%s", ns, ref.Name, ref.Port.String(), for_)}, nil
}

// findServicePort finds the Service port a ClusterNode names, by name or number.
func findServicePort(svc *corev1.Service, want intstr.IntOrString) (corev1.ServicePort, bool) {
	for _, p := range svc.Spec.Ports {
		if want.Type == intstr.String && p.Name == want.StrVal {
			return p, true
		}
		if want.Type == intstr.Int && p.Port == want.IntVal {
			return p, true
		}
	}
	return corev1.ServicePort{}, false
}

func describePorts(svc *corev1.Service) string {
	if len(svc.Spec.Ports) == 0 {
		return "no ports"
	}
	var parts []string
	for _, p := range svc.Spec.Ports {
		if p.Name != "" {
			parts = append(parts, fmt.Sprintf("%s/%d", p.Name, p.Port))
		} else {
			parts = append(parts, strconv.Itoa(int(p.Port)))
		}
	}
	return strings.Join(parts, ", ")
}

// nodeEndpoints collects the ready and the terminating endpoints of the
// named port across a Service's EndpointSlices, optionally only those of a
// given pod, without duplicates, sorted by address. An endpoint whose ready
// condition is unset counts as ready, as the EndpointSlice API defines. An
// endpoint whose terminating condition is true is terminating whatever
// ready says: a Service with publishNotReadyAddresses keeps terminating
// endpoints ready, and a pod being deleted must not get new traffic
// either way. Endpoints neither ready nor terminating (pods starting) are
// left out.
func nodeEndpoints(items []discoveryv1.EndpointSlice, portName, pod string) []skycallv1.Endpoint {
	seen := map[string]int{}
	var out []skycallv1.Endpoint
	for i := range items {
		es := &items[i]
		var port int32 = -1
		for _, p := range es.Ports {
			if p.Port != nil && ptrString(p.Name) == portName {
				port = *p.Port
				break
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range es.Endpoints {
			terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			if !terminating && ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			var podName string
			var podUID types.UID
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				podName, podUID = ep.TargetRef.Name, ep.TargetRef.UID
			}
			if pod != "" && podName != pod {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			addr := net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
			if clusterconfig.CheckAddress(addr) != nil {
				// The API server validates EndpointSlice addresses; an
				// address skynet could not dial is never passed on anyway.
				continue
			}
			e := skycallv1.Endpoint{Address: addr, PodName: podName, PodUID: podUID, Terminating: terminating}
			if i, dup := seen[addr]; dup {
				// One address twice: a new pod with the IP of one still
				// terminating. The ready one is the one to use.
				if out[i].Terminating && !terminating {
					out[i] = e
				}
				continue
			}
			seen[addr] = len(out)
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b skycallv1.Endpoint) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// pickAddress keeps the current address while it is still among the ready
// endpoints, so that senders are not moved between replicas needlessly;
// otherwise it takes the first ready one in order.
func pickAddress(current string, eps []skycallv1.Endpoint) string {
	first := ""
	for _, ep := range eps {
		if ep.Terminating {
			continue
		}
		if ep.Address == current {
			return current
		}
		if first == "" {
			first = ep.Address
		}
	}
	return first
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// SetupWithManager registers the field indexes and the watches.
func (r *ClusterNodeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := setupIndexes(context.Background(), mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clusternode").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		For(&skycallv1.ClusterNode{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A ClusterNode that appears, goes or is renamed changes whether its
		// namesakes conflict.
		Watches(&skycallv1.ClusterNode{}, handler.EnqueueRequestsFromMapFunc(r.namesakes)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.nodesForService)).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.nodesForEndpointSlice)).
		Complete(r)
}

func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &skycallv1.ClusterNode{}, indexServiceName, func(o client.Object) []string {
		n := o.(*skycallv1.ClusterNode)
		if n.Spec.Service == nil {
			return nil
		}
		return []string{n.Spec.Service.Name}
	}); err != nil {
		return fmt.Errorf("index ClusterNodes by service: %w", err)
	}
	if err := idx.IndexField(ctx, &skycallv1.ClusterNode{}, indexServicePod, func(o client.Object) []string {
		n := o.(*skycallv1.ClusterNode)
		if n.Spec.Service == nil {
			return nil
		}
		return []string{servicePodKey(n.Spec.Service.Name, n.Spec.Service.Pod)}
	}); err != nil {
		return fmt.Errorf("index ClusterNodes by service and pod: %w", err)
	}
	if err := idx.IndexField(ctx, &skycallv1.ClusterNode{}, indexNodeName, func(o client.Object) []string {
		return []string{o.(*skycallv1.ClusterNode).EffectiveNodeName()}
	}); err != nil {
		return fmt.Errorf("index ClusterNodes by node name: %w", err)
	}
	return nil
}

func (r *ClusterNodeReconciler) namesakes(ctx context.Context, o client.Object) []ctrl.Request {
	n, ok := o.(*skycallv1.ClusterNode)
	if !ok {
		return nil
	}
	return r.nodesMatching(ctx, n.Namespace, indexNodeName, n.EffectiveNodeName(), n.Name)
}

func (r *ClusterNodeReconciler) nodesForService(ctx context.Context, o client.Object) []ctrl.Request {
	return r.nodesMatching(ctx, o.GetNamespace(), indexServiceName, o.GetName(), "")
}

// nodesForEndpointSlice maps a slice to the ClusterNodes it can change:
// those following every pod of its Service, and those following one of
// the pods it lists. (On an update, controller-runtime maps the old and
// the new slice, so a pod leaving the slice reaches its node too.) A
// ClusterNodeSet of 1,000 pods makes 1,000 nodes of one Service; waking
// all of them for every endpoint change would make a rollout quadratic.
func (r *ClusterNodeReconciler) nodesForEndpointSlice(ctx context.Context, o client.Object) []ctrl.Request {
	svc := o.GetLabels()[discoveryv1.LabelServiceName]
	es, ok := o.(*discoveryv1.EndpointSlice)
	if svc == "" || !ok {
		return nil
	}
	reqs := r.nodesMatching(ctx, o.GetNamespace(), indexServicePod, servicePodKey(svc, ""), "")
	seen := map[string]bool{}
	for _, ep := range es.Endpoints {
		if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" || ep.TargetRef.Name == "" || seen[ep.TargetRef.Name] {
			continue
		}
		seen[ep.TargetRef.Name] = true
		reqs = append(reqs, r.nodesMatching(ctx, o.GetNamespace(), indexServicePod, servicePodKey(svc, ep.TargetRef.Name), "")...)
	}
	r.metrics.sliceChanged(o, reqs)
	return reqs
}

func (r *ClusterNodeReconciler) nodesMatching(ctx context.Context, ns, index, value, skip string) []ctrl.Request {
	var list skycallv1.ClusterNodeList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{index: value}); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list ClusterNodes", "namespace", ns, "index", index, "value", value)
		return nil
	}
	reqs := make([]ctrl.Request, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].Name == skip {
			continue
		}
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
