package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/sender/clusterconfig"
)

// Field indexes for the set controller.
const (
	indexSetService = "spec.service.name" // on ClusterNodeSets
	indexSetOwner   = "metadata.controller.clusterNodeSet"
)

// maxListed bounds how many names a set's condition message lists.
const maxListed = 5

// ClusterNodeSetReconciler keeps one ClusterNode per pod listed in a
// Service's EndpointSlices (ready or not), owned by the set.
//
// Each pod's ClusterNode is named after the pod, follows that pod
// (spec.service.pod), and is controlled by the set (a controller
// ownerReference, so the garbage collector removes it with the set). The
// set adopts nothing: a ClusterNode of that name it does not control
// (written by hand, or by another set) is reported as a conflict and left
// alone. The ClusterNode controller resolves each node as usual, Draining
// included; the set only creates, updates and removes them.
type ClusterNodeSetReconciler struct {
	client.Client
	// Now is the clock (tests may replace it); time.Now when nil.
	Now func() time.Time
	// retry spaces out the passes of a set some of whose nodes could not
	// be written; set by SetupWithManager.
	retry workqueue.TypedRateLimiter[ctrl.Request]
}

// Bounds of the backoff between passes of a set whose nodes could not all
// be written.
const (
	setRetryMin = 5 * time.Millisecond
	setRetryMax = 5 * time.Minute
)

// +kubebuilder:rbac:groups=cluster.skycall.io,resources=clusternodesets,verbs=get;list;watch
// +kubebuilder:rbac:groups=cluster.skycall.io,resources=clusternodesets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cluster.skycall.io,resources=clusternodesets/finalizers,verbs=update
// +kubebuilder:rbac:groups=cluster.skycall.io,resources=clusternodes,verbs=get;list;watch;create;update;patch;delete

// Reconcile brings one set's ClusterNodes and status up to date.
func (r *ClusterNodeSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var set skycallv1.ClusterNodeSet
	if err := r.Get(ctx, req.NamespacedName, &set); err != nil {
		r.retry.Forget(req)
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !set.DeletionTimestamp.IsZero() {
		r.retry.Forget(req)
		return ctrl.Result{}, nil // the garbage collector takes the nodes
	}
	before := set.Status.DeepCopy()
	requeue, failed, err := r.sync(ctx, &set)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !equality.Semantic.DeepEqual(before, &set.Status) {
		if err := r.Status().Update(ctx, &set); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if failed == nil {
		r.retry.Forget(req)
		return ctrl.Result{RequeueAfter: requeue}, nil
	}
	// The other nodes and the status are written: retry the failed ones
	// with a backoff of our own, not by returning the error, whose backoff
	// (up to 16 minutes) would also delay a removal that is due.
	after := r.retry.When(req)
	log.FromContext(ctx).Error(failed, "Some ClusterNodes of the set could not be written; the rest are", "retryAfter", after)
	if requeue == 0 || after < requeue {
		requeue = after
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// setSummary is what sync found, for the status.
type setSummary struct {
	reason, message string
	desired         int
	conflicts       []string // "pod: why"
	invalid         []string // "pod: why"
	retry           bool     // a write raced the cache: look again soon
}

// sync creates, updates and removes the set's ClusterNodes and fills
// set.Status. It returns when to look again (a pod's removal grace) and
// the joined errors of the nodes it could not write: one node's failure
// costs only that node, the others are still created, updated and removed.
// err is a failure to read the set's pods or nodes: then nothing was done.
func (r *ClusterNodeSetReconciler) sync(ctx context.Context, set *skycallv1.ClusterNodeSet) (requeue time.Duration, failed, err error) {
	var owned skycallv1.ClusterNodeList
	if err := r.List(ctx, &owned, client.InNamespace(set.Namespace), client.MatchingFields{indexSetOwner: string(set.UID)}); err != nil {
		return 0, nil, fmt.Errorf("list the ClusterNodes of set %s/%s: %w", set.Namespace, set.Name, err)
	}
	var sum setSummary
	var errs []error
	pods, known, err := r.podsBehind(ctx, set, &sum)
	if err != nil {
		return 0, nil, err
	}
	if known {
		sum.desired = len(pods)
		mine := make(map[string]*skycallv1.ClusterNode, len(owned.Items))
		for i := range owned.Items {
			mine[owned.Items[i].Name] = &owned.Items[i]
		}
		var missing []*skycallv1.ClusterNode
		for _, pod := range pods {
			cn, err := r.ensureNode(ctx, set, pod, mine[pod], &sum)
			if err != nil {
				errs = append(errs, err)
			}
			if cn != nil {
				missing = append(missing, cn)
			}
		}
		errs = append(errs, r.createAll(ctx, missing, &sum)...)
		// Nodes whose pod has left: removed after the grace.
		for i := range owned.Items {
			cn := &owned.Items[i]
			if _, ok := slices.BinarySearch(pods, cn.Name); ok || !cn.DeletionTimestamp.IsZero() {
				continue
			}
			wait, err := r.retire(ctx, set, cn)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if wait > 0 && (requeue == 0 || wait < requeue) {
				requeue = wait
			}
		}
	}
	r.summarise(set, owned.Items, &sum)
	if sum.retry {
		requeue = conflictRetry
	}
	return requeue, errors.Join(errs...), nil
}

// podsBehind lists, sorted, the pods the set's Service's EndpointSlices
// name (ready or not). known is false when the Service or its port cannot
// be found: then the set leaves its nodes as they are (a Service deleted
// by mistake must not take every node with it) and sum says why.
func (r *ClusterNodeSetReconciler) podsBehind(ctx context.Context, set *skycallv1.ClusterNodeSet, sum *setSummary) (pods []string, known bool, err error) {
	ref := set.Spec.Service
	var svc corev1.Service
	if err := r.Get(ctx, types.NamespacedName{Namespace: set.Namespace, Name: ref.Name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			sum.reason = skycallv1.ReasonServiceNotFound
			sum.message = fmt.Sprintf("Service %s/%s not found; the set's nodes are left as they are", set.Namespace, ref.Name)
			return nil, false, nil
		}
		return nil, false, err
	}
	port, ok := findServicePort(&svc, ref.Port)
	if !ok {
		sum.reason = skycallv1.ReasonPortNotFound
		sum.message = fmt.Sprintf("Service %s/%s has no port %s (it has %s); the set's nodes are left as they are",
			set.Namespace, ref.Name, ref.Port.String(), describePorts(&svc))
		return nil, false, nil
	}
	var list discoveryv1.EndpointSliceList
	if err := r.List(ctx, &list, client.InNamespace(set.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, false, err
	}
	seen := map[string]bool{}
	for i := range list.Items {
		es := &list.Items[i]
		if !slices.ContainsFunc(es.Ports, func(p discoveryv1.EndpointPort) bool {
			return p.Port != nil && ptrString(p.Name) == port.Name
		}) {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && ep.TargetRef.Name != "" && !seen[ep.TargetRef.Name] {
				seen[ep.TargetRef.Name] = true
				pods = append(pods, ep.TargetRef.Name)
			}
		}
	}
	slices.Sort(pods)
	return pods, true, nil
}

// ensureNode makes the pod's ClusterNode what the set says, or returns
// the one to create if there is none. cur is the set's own node of that
// name, if any.
func (r *ClusterNodeSetReconciler) ensureNode(ctx context.Context, set *skycallv1.ClusterNodeSet,
	pod string, cur *skycallv1.ClusterNode, sum *setSummary) (*skycallv1.ClusterNode, error) {
	// The API server does not check an EndpointSlice's target pod names,
	// and the ClusterNode would be refused its name on every pass.
	if why := validation.IsDNS1123Subdomain(pod); len(why) > 0 {
		sum.invalid = append(sum.invalid, fmt.Sprintf("%s: its ClusterNode would be named after it, and %q is not a valid object name: %s",
			pod, pod, strings.Join(why, "; ")))
		return nil, nil
	}
	nodeName, err := RenderNodeName(set.Spec.NodeName, pod)
	if err != nil {
		sum.invalid = append(sum.invalid, fmt.Sprintf("%s: spec.nodeName %q: %v", pod, set.Spec.NodeName, err))
		return nil, nil
	}
	want := skycallv1.ClusterNodeSpec{
		NodeName: nodeName,
		Service:  &skycallv1.ServiceReference{Name: set.Spec.Service.Name, Port: set.Spec.Service.Port, Pod: pod},
		Down:     set.Spec.Down,
	}

	if cur == nil {
		// Not ours: is there one we must not touch?
		var other skycallv1.ClusterNode
		err := r.Get(ctx, types.NamespacedName{Namespace: set.Namespace, Name: pod}, &other)
		switch {
		case err == nil:
			sum.conflicts = append(sum.conflicts, pod+": "+describeOwner(&other))
			return nil, nil
		case !apierrors.IsNotFound(err):
			return nil, err
		}
		cn := &skycallv1.ClusterNode{
			ObjectMeta: metav1.ObjectMeta{Namespace: set.Namespace, Name: pod,
				Labels: map[string]string{skycallv1.LabelClusterNodeSet: set.Name}},
			Spec: want,
		}
		if err := controllerutil.SetControllerReference(set, cn, r.Scheme()); err != nil {
			return nil, fmt.Errorf("ClusterNode %s/%s: %w", set.Namespace, pod, err)
		}
		return cn, nil
	}

	_, gone := cur.Annotations[skycallv1.AnnotationPodGoneSince]
	if equality.Semantic.DeepEqual(cur.Spec, want) && cur.Labels[skycallv1.LabelClusterNodeSet] == set.Name && !gone {
		return nil, nil
	}
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Spec = want
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	cur.Labels[skycallv1.LabelClusterNodeSet] = set.Name
	delete(cur.Annotations, skycallv1.AnnotationPodGoneSince) // the pod is back
	if err := r.Patch(ctx, cur, patch); err != nil {
		return nil, client.IgnoreNotFound(fmt.Errorf("update ClusterNode %s/%s: %w", cur.Namespace, cur.Name, err))
	}
	return nil, nil
}

// createParallelism bounds the creates a set's reconcile has in flight: a
// StatefulSet scaled to 1,000 replicas should not wait for 1,000 round
// trips one after the other, nor open 1,000 requests at once.
const createParallelism = 16

// createAll creates the nodes, a few at a time, and returns the errors
// other than AlreadyExists: one node refused does not stop the others.
func (r *ClusterNodeSetReconciler) createAll(ctx context.Context, nodes []*skycallv1.ClusterNode, sum *setSummary) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards errs and sum.retry
		errs []error
		sem  = make(chan struct{}, createParallelism)
	)
	for _, cn := range nodes {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := r.Create(ctx, cn)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				log.FromContext(ctx).V(1).Info("ClusterNode created", "pod", cn.Spec.Service.Pod, "node", cn.Spec.NodeName)
			case apierrors.IsAlreadyExists(err):
				// Created meanwhile, by us (the cache is behind) or by
				// someone else: the next pass tells which.
				sum.retry = true
			default:
				errs = append(errs, fmt.Errorf("create ClusterNode %s/%s for pod %s: %w", cn.Namespace, cn.Name, cn.Spec.Service.Pod, err))
			}
		}()
	}
	wg.Wait()
	return errs
}

// retire handles one of the set's nodes whose pod is no longer listed: it
// marks when the pod was first missed and deletes the node once the set's
// removeAfterSeconds have passed since. It returns how long is left.
func (r *ClusterNodeSetReconciler) retire(ctx context.Context, set *skycallv1.ClusterNodeSet, cn *skycallv1.ClusterNode) (time.Duration, error) {
	grace := 30 * time.Second
	if set.Spec.RemoveAfterSeconds != nil {
		grace = time.Duration(*set.Spec.RemoveAfterSeconds) * time.Second
	}
	now := r.now()
	since, ok := goneSince(cn)
	if !ok && grace > 0 {
		// First noticed now (or the mark was mangled: start again).
		patch := client.MergeFrom(cn.DeepCopy())
		if cn.Annotations == nil {
			cn.Annotations = map[string]string{}
		}
		cn.Annotations[skycallv1.AnnotationPodGoneSince] = now.UTC().Format(goneSinceLayout)
		if err := r.Patch(ctx, cn, patch); err != nil {
			return 0, client.IgnoreNotFound(fmt.Errorf("mark ClusterNode %s/%s as missing its pod: %w", cn.Namespace, cn.Name, err))
		}
		return grace, nil
	}
	if left := since.Add(grace).Sub(now); ok && left > 0 {
		return left, nil
	}
	// Only the object we looked at: one recreated meanwhile under the
	// same name is another node (a conflict answer is a UID mismatch).
	if err := r.Delete(ctx, cn, client.Preconditions{UID: &cn.UID}); err != nil &&
		!apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return 0, fmt.Errorf("delete ClusterNode %s/%s (its pod left Service %s): %w", cn.Namespace, cn.Name, set.Spec.Service.Name, err)
	}
	log.FromContext(ctx).V(1).Info("ClusterNode removed: its pod left the Service", "node", cn.Name)
	return 0, nil
}

// goneSinceLayout is RFC 3339 with the nanoseconds always written: a mark
// cut to the second would remove the node up to a second early.
const goneSinceLayout = "2006-01-02T15:04:05.000000000Z07:00"

// goneSince reads a node's pod-gone-since mark. A mark in whole seconds,
// as older operators wrote it, counts from the end of its second, so that
// the node still stays at least the grace.
func goneSince(cn *skycallv1.ClusterNode) (time.Time, bool) {
	mark := cn.Annotations[skycallv1.AnnotationPodGoneSince]
	since, err := time.Parse(time.RFC3339Nano, mark)
	if err != nil {
		return time.Time{}, false
	}
	if !strings.Contains(mark, ".") {
		since = since.Add(time.Second)
	}
	return since, true
}

func (r *ClusterNodeSetReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// summarise fills the set's status from what sync found and the set's
// nodes as the cache has them.
func (r *ClusterNodeSetReconciler) summarise(set *skycallv1.ClusterNodeSet, owned []skycallv1.ClusterNode, sum *setSummary) {
	st := &set.Status
	st.ObservedGeneration = set.Generation
	st.Nodes, st.Ready, st.Draining = 0, 0, 0
	if sum.reason == "" {
		st.Desired = int32(sum.desired)
	}
	var notReady []string
	for i := range owned {
		cn := &owned[i]
		if !cn.DeletionTimestamp.IsZero() {
			continue
		}
		st.Nodes++
		c := meta.FindStatusCondition(cn.Status.Conditions, skycallv1.ConditionReady)
		switch {
		case c != nil && c.Status == metav1.ConditionTrue:
			st.Ready++
		case c != nil && c.Reason == skycallv1.ReasonDraining:
			st.Draining++
			notReady = append(notReady, fmt.Sprintf("%s (Draining)", cn.Name))
		case c != nil:
			notReady = append(notReady, fmt.Sprintf("%s (%s)", cn.Name, c.Reason))
		default:
			notReady = append(notReady, cn.Name+" (not resolved yet)")
		}
	}

	cond := metav1.Condition{Type: skycallv1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: set.Generation}
	switch {
	case sum.reason != "":
		cond.Reason, cond.Message = sum.reason, sum.message
	case len(sum.conflicts) > 0:
		cond.Reason = skycallv1.ReasonNodeConflict
		cond.Message = fmt.Sprintf("%d pod(s) have a ClusterNode of their name that is not this set's, which the set leaves alone (delete it to let the set take over): %s",
			len(sum.conflicts), listSome(sum.conflicts))
	case len(sum.invalid) > 0:
		cond.Reason = skycallv1.ReasonInvalidNodeName
		cond.Message = fmt.Sprintf("%d pod(s) have no ClusterNode, as no valid name can be made for them: %s",
			len(sum.invalid), listSome(sum.invalid))
	case set.Spec.Down:
		cond.Reason, cond.Message = skycallv1.ReasonAdministrativelyDown, "spec.down is true: every node of the set is down"
	case len(notReady) > 0 || int(st.Ready) < sum.desired:
		cond.Reason = skycallv1.ReasonNodesNotReady
		cond.Message = fmt.Sprintf("%d of %d pods' nodes are Ready", st.Ready, sum.desired)
		if len(notReady) > 0 {
			cond.Message += "; not ready: " + listSome(notReady)
		}
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, skycallv1.ReasonAllNodesReady
		cond.Message = fmt.Sprintf("all %d pods' nodes are Ready", st.Ready)
	}
	meta.SetStatusCondition(&st.Conditions, cond)
}

// listSome joins up to maxListed items, saying how many more there are.
func listSome(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:maxListed], "; ") + fmt.Sprintf("; and %d more", len(items)-maxListed)
}

// describeOwner says whose a ClusterNode the set will not touch is.
func describeOwner(cn *skycallv1.ClusterNode) string {
	if ref := metav1.GetControllerOf(cn); ref != nil {
		return fmt.Sprintf("ClusterNode %s is controlled by %s %s", cn.Name, ref.Kind, ref.Name)
	}
	return fmt.Sprintf("ClusterNode %s exists and has no controller (written by hand?)", cn.Name)
}

// RenderNodeName is the node name a set's template gives a pod: {pod} is
// the pod's name, {ordinal} the number at the end of it (a StatefulSet
// pod's ordinal, after the last '-'). It fails when the template uses
// {ordinal} and the pod name has none, or when the result is not a valid
// node name (clusterconfig.CheckNodeName, which the CRD agrees with).
func RenderNodeName(template, pod string) (string, error) {
	name := strings.ReplaceAll(template, "{pod}", pod)
	if strings.Contains(name, "{ordinal}") {
		i := strings.LastIndexByte(pod, '-')
		ord := pod[i+1:]
		if i < 0 || ord == "" || strings.Trim(ord, "0123456789") != "" {
			return "", fmt.Errorf("pod name %q does not end in -<ordinal>, which {ordinal} needs", pod)
		}
		name = strings.ReplaceAll(name, "{ordinal}", ord)
	}
	if len(name) > 63 {
		return "", fmt.Errorf("node name %q is longer than 63 characters", name)
	}
	if err := clusterconfig.CheckNodeName(name); err != nil {
		return "", err
	}
	return name, nil
}

// SetupWithManager registers the indexes and watches of the set controller.
func (r *ClusterNodeSetReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	r.retry = workqueue.NewTypedItemExponentialFailureRateLimiter[ctrl.Request](setRetryMin, setRetryMax)
	if err := idx.IndexField(ctx, &skycallv1.ClusterNodeSet{}, indexSetService, func(o client.Object) []string {
		return []string{o.(*skycallv1.ClusterNodeSet).Spec.Service.Name}
	}); err != nil {
		return fmt.Errorf("index ClusterNodeSets by service: %w", err)
	}
	if err := idx.IndexField(ctx, &skycallv1.ClusterNode{}, indexSetOwner, func(o client.Object) []string {
		ref := metav1.GetControllerOf(o)
		if ref == nil || ref.Kind != "ClusterNodeSet" || ref.APIVersion != skycallv1.GroupVersion.String() {
			return nil
		}
		return []string{string(ref.UID)}
	}); err != nil {
		return fmt.Errorf("index ClusterNodes by their set: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clusternodeset").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(workers, 1)}).
		For(&skycallv1.ClusterNodeSet{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Its own nodes: status changes move the counts, and a node
		// deleted or edited by someone else is put back.
		Owns(&skycallv1.ClusterNode{}).
		// Any ClusterNode appearing or going may start or end a conflict
		// of a set in its namespace (a hand-written one, another set's).
		Watches(&skycallv1.ClusterNode{}, handler.EnqueueRequestsFromMapFunc(r.setsInNamespace),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return true },
				DeleteFunc:  func(event.DeleteEvent) bool { return true },
				UpdateFunc:  func(event.UpdateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.setsForService)).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.setsForEndpointSlice)).
		Complete(r)
}

func (r *ClusterNodeSetReconciler) setsForService(ctx context.Context, o client.Object) []ctrl.Request {
	return r.sets(ctx, o.GetNamespace(), client.MatchingFields{indexSetService: o.GetName()})
}

func (r *ClusterNodeSetReconciler) setsForEndpointSlice(ctx context.Context, o client.Object) []ctrl.Request {
	svc := o.GetLabels()[discoveryv1.LabelServiceName]
	if svc == "" {
		return nil
	}
	return r.sets(ctx, o.GetNamespace(), client.MatchingFields{indexSetService: svc})
}

func (r *ClusterNodeSetReconciler) setsInNamespace(ctx context.Context, o client.Object) []ctrl.Request {
	return r.sets(ctx, o.GetNamespace())
}

func (r *ClusterNodeSetReconciler) sets(ctx context.Context, ns string, opts ...client.ListOption) []ctrl.Request {
	var list skycallv1.ClusterNodeSetList
	if err := r.List(ctx, &list, append(opts, client.InNamespace(ns))...); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list ClusterNodeSets", "namespace", ns)
		return nil
	}
	reqs := make([]ctrl.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}
