package kube

import (
	"github.com/skycall-io/skycall/sender"
)

// NewClient returns a Client whose registry is the ClusterNodes of the
// pod's own namespace, read with the pod's service account (or, outside a
// cluster, with the kubeconfig and its current namespace; POD_NAMESPACE
// overrides the namespace). The service account needs get, list and watch
// on clusternodes.cluster.skycall.io in that namespace. Nothing contacts the
// API server until the first message; Close stops the registry too.
func NewClient(opts ...sender.Option) (*sender.Client, error) {
	cfg, ns, err := InClusterConfig()
	if err != nil {
		return nil, err
	}
	reg, err := NewRegistry(cfg, ns)
	if err != nil {
		return nil, err
	}
	c := sender.New(reg, append(opts, sender.WithCloseRegistry())...)
	reg.log = c.Logger().WithName("registry") // nothing has run yet: the registry starts on the first Lookup
	return c, nil
}
