package sender

import (
	"github.com/skycall-io/skycall/sender/registry"
)

// NewInCluster returns a Client whose registry is the ClusterNodes of the
// pod's own namespace, read with the pod's service account (or, outside a
// cluster, with the kubeconfig and its current namespace; POD_NAMESPACE
// overrides the namespace). The service account needs get, list and watch
// on clusternodes.cluster.skycall.io in that namespace. Nothing contacts the
// API server until the first message; Close stops the registry too.
func NewInCluster(opts ...Option) (*Client, error) {
	cfg, ns, err := registry.InClusterConfig()
	if err != nil {
		return nil, err
	}
	o := defaultClientOptions()
	for _, opt := range opts {
		opt(&o)
	}
	reg, err := registry.NewKubernetes(cfg, ns, registry.KubernetesLogger(o.log.WithName("registry")))
	if err != nil {
		return nil, err
	}
	c := New(reg, opts...)
	c.owned = reg
	return c, nil
}
