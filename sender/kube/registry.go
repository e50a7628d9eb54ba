package kube

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/internal/apiwait"
	"github.com/skycall-io/skycall/sender/registry"
)

// Option configures a Kubernetes
type Option func(*Registry)

// WithLogger sets where the registry logs (sync, permission problems).
func WithLogger(l logr.Logger) Option {
	return func(k *Registry) { k.log = l }
}

// WithNoWait makes callers of a node that has no ClusterNode fail at
// once instead of waiting for one to be created (skynet's __nowaiting).
func WithNoWait(noWait bool) Option {
	return func(k *Registry) { k.noWait = noWait }
}

// Kubernetes is a registry of the ClusterNodes in one namespace, as resolved
// by the skycall operator. It needs only get, list and watch on
// clusternodes.cluster.skycall.io in that namespace.
//
// Its informer starts on the first Lookup. Until the first list has
// arrived every node is Unknown (callers wait), never Absent. A node no
// ClusterNode claims is Absent; otherwise EntryOf decides, the same rule
// the operator writes the registry ConfigMap with.
//
// A permission or missing-CRD error on the first list is returned by Lookup
// wrapped in registry.ErrRegistry, naming the namespace and what to grant.
type Registry struct {
	cfg    *rest.Config
	ns     string
	log    logr.Logger
	noWait bool

	startOnce sync.Once
	inf       cache.SharedIndexInformer
	cancel    context.CancelFunc
	done      chan struct{}

	mu     sync.RWMutex
	synced bool
	err    error
	closed bool

	w   registry.Watchers
	all registry.Watchers // WatchAll's, under the key ""
}

const indexNodeName = "nodeName"

// APIServerRetry is the longest the registry waits between two attempts to
// reach an API server that is down or restarting. Longer than the
// operator's one second: every sender pod retries, and a starting API
// server pays a TLS handshake for each attempt.
const APIServerRetry = 2 * time.Second

// NewRegistry returns a registry of the ClusterNodes in namespace, read
// with cfg. Nothing is contacted until the first Lookup.
func NewRegistry(cfg *rest.Config, namespace string, opts ...Option) (*Registry, error) {
	if namespace == "" {
		return nil, fmt.Errorf("%w: Kubernetes registry: empty namespace", registry.ErrRegistry)
	}
	k := &Registry{cfg: rest.CopyConfig(cfg), ns: namespace, log: logr.Discard()}
	for _, o := range opts {
		o(k)
	}
	return k, nil
}

// InClusterConfig returns the pod's in-cluster REST config and namespace
// (from the service account). Outside a cluster it falls back to the
// kubeconfig ($KUBECONFIG or ~/.kube/config) and its current context's
// namespace. POD_NAMESPACE, when set, overrides the namespace.
func InClusterConfig() (*rest.Config, string, error) {
	ns := os.Getenv("POD_NAMESPACE")
	cfg, err := rest.InClusterConfig()
	if err == nil {
		if ns == "" {
			raw, rerr := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
			if rerr != nil {
				return nil, "", fmt.Errorf("%w: in-cluster namespace: %w (set POD_NAMESPACE from the downward API)", registry.ErrRegistry, rerr)
			}
			ns = strings.TrimSpace(string(raw))
		}
		return cfg, ns, nil
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{})
	cfg, kerr := loader.ClientConfig()
	if kerr != nil {
		return nil, "", fmt.Errorf("%w: not in a cluster (%v) and no usable kubeconfig: %w", registry.ErrRegistry, err, kerr)
	}
	if ns == "" {
		if ns, _, kerr = loader.Namespace(); kerr != nil || ns == "" {
			ns = "default"
		}
	}
	return cfg, ns, nil
}

// Namespace is the namespace whose ClusterNodes this registry follows.
func (k *Registry) Namespace() string { return k.ns }

// Lookup implements registry.Registry.
func (k *Registry) Lookup(node string) (registry.Entry, error) {
	k.start()
	k.mu.RLock()
	synced, err := k.synced, k.err
	k.mu.RUnlock()
	if !synced {
		return registry.Entry{Node: node, State: registry.Unknown, Reason: "ClusterNodes not loaded yet"}, err
	}
	objs, ierr := k.inf.GetIndexer().ByIndex(indexNodeName, node)
	if ierr != nil {
		return registry.Entry{Node: node, State: registry.Unknown}, fmt.Errorf("%w: %w", registry.ErrRegistry, ierr)
	}
	var live []*skycallv1.ClusterNode
	for _, o := range objs {
		if cn, ok := o.(*skycallv1.ClusterNode); ok && cn.DeletionTimestamp.IsZero() {
			live = append(live, cn)
		}
	}
	if len(live) == 0 {
		return registry.Entry{Node: node, State: registry.Absent, NoWait: k.noWait}, nil
	}
	return EntryOf(node, live), nil
}

// Watch implements registry.Registry.
func (k *Registry) Watch(node string, notify func()) (stop func()) {
	return k.w.Add(node, notify)
}

// Entries returns one entry per node name the namespace's live
// ClusterNodes claim, sorted by name: ClusterNodeEntries, what the operator
// writes into the registry ConfigMap (skycall-agent pushes it to skynet).
// synced is false until the first list has arrived (entries is then nil:
// not an empty namespace); err is what Lookup would return.
func (k *Registry) Entries() (entries []registry.Entry, synced bool, err error) {
	k.start()
	k.mu.RLock()
	synced, err = k.synced, k.err
	k.mu.RUnlock()
	if !synced {
		return nil, false, err
	}
	objs := k.inf.GetStore().List()
	nodes := make([]skycallv1.ClusterNode, 0, len(objs))
	for _, o := range objs {
		if cn, ok := o.(*skycallv1.ClusterNode); ok {
			nodes = append(nodes, *cn)
		}
	}
	return ClusterNodeEntries(nodes), true, nil
}

// WatchAll arranges for notify to be called whenever any entry of Entries,
// or the registry's error, may have changed, until stop is called; the
// rules of Watch apply.
func (k *Registry) WatchAll(notify func()) (stop func()) {
	return k.all.Add("", notify)
}

// Close stops the informer, if it started.
func (k *Registry) Close() error {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.startOnce.Do(func() {}) // never start after Close
	if k.cancel != nil {
		k.cancel()
		<-k.done
	}
	return nil
}

func (k *Registry) start() {
	k.startOnce.Do(func() {
		k.mu.RLock()
		closed := k.closed
		k.mu.RUnlock()
		if closed {
			return
		}
		if err := k.startInformer(); err != nil {
			k.mu.Lock()
			k.err = err
			k.mu.Unlock()
		}
	})
}

func (k *Registry) startInformer() error {
	scheme := runtime.NewScheme()
	if err := skycallv1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("%w: %w", registry.ErrRegistry, err)
	}
	cfg := rest.CopyConfig(k.cfg)
	cfg.GroupVersion = &skycallv1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = "skycall-sender"
	}
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return fmt.Errorf("%w: Kubernetes client: %w", registry.ErrRegistry, err)
	}
	// Waiting for an API server that is down, rather than client-go's
	// backoff of up to a minute, makes address changes reach this sender
	// within APIServerRetry of the API server being back.
	ready, err := apiwait.Readyz(k.cfg)
	if err != nil {
		return fmt.Errorf("%w: Kubernetes client: %w", registry.ErrRegistry, err)
	}
	lw := apiwait.ListerWatcher(cache.NewListWatchFromClient(rc, "clusternodes", k.ns, fields.Everything()),
		APIServerRetry, ready, k.log.WithValues("namespace", k.ns))
	inf := cache.NewSharedIndexInformer(lw, &skycallv1.ClusterNode{}, 0, cache.Indexers{
		indexNodeName: func(obj any) ([]string, error) {
			if cn, ok := obj.(*skycallv1.ClusterNode); ok {
				return []string{NodeNameOf(cn)}, nil
			}
			return nil, nil
		},
	})
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		k.listFailed(err)
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { k.changed(obj) },
		UpdateFunc: func(oldObj, newObj any) {
			k.changed(oldObj, newObj)
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			k.changed(obj)
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	k.inf, k.cancel, k.done = inf, cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		inf.RunWithContext(ctx)
	}()
	go func() {
		defer wg.Done()
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return
		}
		k.mu.Lock()
		k.synced, k.err = true, nil
		k.mu.Unlock()
		k.log.V(1).Info("ClusterNodes loaded", "namespace", k.ns, "count", len(inf.GetStore().ListKeys()))
		k.w.NotifyAll()
		k.all.NotifyAll()
	}()
	go func() {
		wg.Wait()
		close(k.done)
	}()
	return nil
}

// changed notifies the watchers of the node names an event touches.
func (k *Registry) changed(objs ...any) {
	k.mu.RLock()
	synced := k.synced
	k.mu.RUnlock()
	if !synced {
		return // the sync notification covers everything
	}
	var names []string
	for _, o := range objs {
		if cn, ok := o.(*skycallv1.ClusterNode); ok {
			names = append(names, NodeNameOf(cn))
		}
	}
	k.w.Notify(names...)
	k.all.NotifyAll()
}

// listFailed records a list or watch failure that callers must hear about:
// before the first sync, a permission or missing-API error would otherwise
// be an endless wait.
func (k *Registry) listFailed(err error) {
	var wrapped error
	switch {
	case apierrors.IsForbidden(err):
		wrapped = fmt.Errorf("%w: cannot read ClusterNodes in namespace %q: %w; grant this pod's service account "+
			"the verbs get, list and watch on clusternodes.cluster.skycall.io in that namespace", registry.ErrRegistry, k.ns, err)
	case apierrors.IsUnauthorized(err):
		wrapped = fmt.Errorf("%w: the API server rejected this pod's credentials reading ClusterNodes in namespace %q: %w",
			registry.ErrRegistry, k.ns, err)
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		wrapped = fmt.Errorf("%w: the API server does not serve clusternodes.cluster.skycall.io (namespace %q): %w; "+
			"install the skycall CRDs", registry.ErrRegistry, k.ns, err)
	default:
		// Transient (network, API server restarting): the informer retries
		// and callers keep waiting within their deadlines.
		k.log.V(1).Info("Listing ClusterNodes failed; retrying", "namespace", k.ns, "error", err.Error())
		return
	}
	k.mu.Lock()
	if k.synced {
		k.mu.Unlock()
		k.log.Error(wrapped, "Following ClusterNodes failed; using the last known state")
		return
	}
	first := k.err == nil
	k.err = wrapped
	k.mu.Unlock()
	if first {
		k.log.Error(wrapped, "Kubernetes registry unavailable")
		k.w.NotifyAll()
		k.all.NotifyAll()
	}
}
