package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
)

// RegistryReconciler keeps one registry ConfigMap per namespace in step with
// that namespace's ClusterNodes. Requests are keyed by namespace, so a burst
// of ClusterNode changes collapses into one rebuild.
type RegistryReconciler struct {
	client.Client
	// APIReader reads past the cache, for a registry ConfigMap that lost its
	// label (the cache only holds labelled ones).
	APIReader client.Reader
	// MinInterval spaces the writes of one namespace's registry: a change
	// after a quiet spell is written at once, a burst of changes (1,000
	// nodes becoming ready) as a few writes instead of one per node.
	MinInterval time.Duration

	mu        sync.Mutex
	lastWrite map[string]time.Time
}

// holdOff says how long to wait before writing namespace's registry again.
func (r *RegistryReconciler) holdOff(namespace string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.lastWrite[namespace]; ok {
		return r.MinInterval - time.Since(last)
	}
	return 0
}

func (r *RegistryReconciler) wrote(namespace string, deleted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastWrite == nil {
		r.lastWrite = map[string]time.Time{}
	}
	if deleted {
		delete(r.lastWrite, namespace)
		return
	}
	r.lastWrite[namespace] = time.Now()
}

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete

// Reconcile rebuilds the registry of req.Namespace from the current
// ClusterNodes and writes it only when its content changed.
func (r *RegistryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var nodes skycallv1.ClusterNodeList
	if err := r.List(ctx, &nodes, client.InNamespace(req.Namespace)); err != nil {
		return ctrl.Result{}, err
	}
	key := types.NamespacedName{Namespace: req.Namespace, Name: RegistryConfigMapName}

	var cm corev1.ConfigMap
	found := true
	if err := r.Get(ctx, key, &cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		found = false
	}

	entries := registryEntries(nodes.Items)
	if len(entries) == 0 && len(nodes.Items) == 0 {
		// No ClusterNodes left: the namespace has no registry.
		if found {
			if err := r.Delete(ctx, &cm); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
			logger.Info("Registry removed: no ClusterNodes left", "configmap", key)
		}
		r.wrote(req.Namespace, true)
		return ctrl.Result{}, nil
	}

	lua := renderClusterConfig(req.Namespace, entries)
	generation := parseGeneration(cm.Data[RegistryJSONKey])
	current, err := renderNodesJSON(generation, entries)
	if err != nil {
		return ctrl.Result{}, err
	}
	if found && cm.Data[RegistryLuaKey] == lua && cm.Data[RegistryJSONKey] == current && hasRegistryLabels(&cm) {
		return ctrl.Result{}, nil
	}
	if wait := r.holdOff(req.Namespace); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	doc, err := renderNodesJSON(generation+1, entries)
	if err != nil {
		return ctrl.Result{}, err
	}
	if size := len(lua) + len(doc); size > RegistryMaxBytes {
		// The API server would refuse it. Keep the last registry in force
		// rather than half of one; any ClusterNode change retries.
		logger.Error(nil, "Registry too large for one ConfigMap; the previous registry stays in force",
			"configmap", key, "nodes", len(entries), "bytes", size, "limit", RegistryMaxBytes)
		return ctrl.Result{}, nil
	}

	if !found {
		cm = corev1.ConfigMap{ObjectMeta: ctrl.ObjectMeta{Namespace: req.Namespace, Name: RegistryConfigMapName}}
		setRegistryContent(&cm, lua, doc)
		err := r.Create(ctx, &cm)
		if apierrors.IsAlreadyExists(err) {
			// It exists but lost its label, so the cache cannot see it.
			if err := r.APIReader.Get(ctx, key, &cm); err != nil {
				return ctrl.Result{}, err
			}
			setRegistryContent(&cm, lua, doc)
			err = r.Update(ctx, &cm)
		}
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("write registry %s: %w", key, err)
		}
	} else {
		setRegistryContent(&cm, lua, doc)
		if err := r.Update(ctx, &cm); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, fmt.Errorf("write registry %s: %w", key, err)
		}
	}
	r.wrote(req.Namespace, false)
	logger.Info("Registry updated", "configmap", key, "nodes", len(entries), "generation", generation+1)
	return ctrl.Result{}, nil
}

// RegistryMaxBytes bounds the registry's data: the API server refuses a
// ConfigMap whose keys and values add up to more than 1 MiB. That is about
// 14,000 nodes named like node-01234 with IPv4 addresses.
const RegistryMaxBytes = 1<<20 - len(RegistryLuaKey) - len(RegistryJSONKey)

func hasRegistryLabels(cm *corev1.ConfigMap) bool {
	return cm.Labels[RegistryLabel] == "true" && cm.Labels["app.kubernetes.io/managed-by"] == "skycall"
}

func setRegistryContent(cm *corev1.ConfigMap, lua, doc string) {
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[RegistryLabel] = "true"
	cm.Labels["app.kubernetes.io/managed-by"] = "skycall"
	cm.Data = map[string]string{RegistryLuaKey: lua, RegistryJSONKey: doc}
	cm.BinaryData = nil
}

// SetupWithManager watches ClusterNodes and the registry ConfigMaps, both
// mapped to their namespace's registry.
func (r *RegistryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toRegistry := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: RegistryConfigMapName}}}
	})
	isRegistry := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == RegistryConfigMapName })
	return ctrl.NewControllerManagedBy(mgr).
		Named("registry").
		Watches(&skycallv1.ClusterNode{}, toRegistry).
		Watches(&corev1.ConfigMap{}, toRegistry, builder.WithPredicates(isRegistry)).
		Complete(r)
}
