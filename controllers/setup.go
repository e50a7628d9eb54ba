package controllers

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/skycall-io/skycall/internal/apiwait"
	"github.com/skycall-io/skycall/sender/registry"
)

// APIServerRetry is the longest an informer of the operator waits between
// two attempts to reach an API server that is down or restarting; a change
// made once it is ready reaches ClusterNode status within about this much
// plus one reconcile (documented: within 5 s).
const APIServerRetry = time.Second

// CacheOptions limits the manager's cache to the watched namespaces (all
// when empty) and, for ConfigMaps, to registry ConfigMaps only: the operator
// never reads any other. Its informers wait for an API server that is down
// rather than back off for up to a minute, asking cfg's /readyz before they
// try again (see internal/apiwait).
func CacheOptions(cfg *rest.Config, namespaces []string) (cache.Options, error) {
	log := ctrl.Log.WithName("cache")
	ready, err := apiwait.Readyz(cfg)
	if err != nil {
		return cache.Options{}, err
	}
	opts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(labels.Set{registry.ConfigMapLabel: "true"})},
		},
		NewInformer: func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, idx toolscache.Indexers) toolscache.SharedIndexInformer {
			return toolscache.NewSharedIndexInformer(apiwait.ListerWatcher(lw, APIServerRetry, ready, log.WithValues("type", fmt.Sprintf("%T", obj))), obj, resync, idx)
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts, nil
}

// Leader election (--leader-elect) needs Leases, and Events to record it.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// The metrics endpoint (--metrics-secure, the default) asks the API server
// who a scraper is and whether it may get /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Options tune the controllers.
type Options struct {
	// Workers is how many ClusterNodes, and how many ClusterNodeSets, are
	// reconciled at once (default 4).
	// Registries are rebuilt one namespace at a time.
	Workers int
	// Registerer takes the operator's metrics (default: controller-runtime's
	// registry, which the manager serves).
	Registerer prometheus.Registerer
}

// Setup registers every skycall controller with the manager.
func Setup(mgr ctrl.Manager, opts Options) error {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Registerer == nil {
		opts.Registerer = metrics.Registry
	}
	m, err := newOperatorMetrics(opts.Registerer)
	if err != nil {
		return err
	}
	if err := (&ClusterNodeReconciler{Client: mgr.GetClient(), Workers: opts.Workers,
		Recorder: mgr.GetEventRecorder("skycall-manager"), metrics: m}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&ClusterNodeSetReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr, opts.Workers); err != nil {
		return err
	}
	return (&RegistryReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), MinInterval: time.Second,
		metrics: m}).SetupWithManager(mgr)
}
