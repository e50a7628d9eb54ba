package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/kube"
	"github.com/skycall-io/skycall/sender/registry"
)

// source is the registry a command uses, with what the Registry interface
// does not offer: the list of its node names (for `nodes`, completion and
// "did you mean" hints) and a description for messages.
type source struct {
	desc  string
	reg   registry.Registry
	names func(ctx context.Context) ([]string, error)
	close func()
}

// registryEnv is read when --registry is not given.
const registryEnv = "SKYCALL_REGISTRY"

// openSource builds the registry named by --registry, $SKYCALL_REGISTRY or,
// by default, the kubeconfig, in that order.
func (o *globalOptions) openSource() (*source, error) {
	spec := o.registry
	if spec == "" {
		spec = os.Getenv(registryEnv)
	}
	kind, arg, _ := strings.Cut(spec, ":")
	switch {
	case spec == "" || spec == "kubernetes":
		return o.kubernetesSource()
	case kind == "file":
		return fileSource(arg)
	case kind == "static":
		return staticSource(arg)
	}
	return nil, usagef("--registry %q: want file:PATH, static:NAME=HOST:PORT,... or nothing (the kubeconfig's ClusterNodes)", spec)
}

func (s *source) Close() {
	if s.close != nil {
		s.close()
	}
}

// staticSource parses NAME=HOST:PORT,NAME=false,... into a no-wait Static
// registry: a name not given is unknown at once, not waited for.
func staticSource(spec string) (*source, error) {
	reg := registry.NewStatic(nil)
	reg.SetNoWait(true)
	var names []string
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, addr, ok := strings.Cut(item, "=")
		if !ok || name == "" || addr == "" {
			return nil, usagef("--registry static: %q is not NAME=HOST:PORT (or NAME=false for a node that is down)", item)
		}
		if addr == "false" {
			reg.SetDown(name)
		} else {
			reg.Set(name, addr)
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, usagef("--registry static: no nodes; write static:NAME=HOST:PORT,...")
	}
	sort.Strings(names)
	return &source{
		desc:  "static registry",
		reg:   reg,
		names: func(context.Context) ([]string, error) { return names, nil },
	}, nil
}

// fileSource follows a skynet cluster config file; names are re-read from
// the file, so that `nodes --watch` sees lines added later.
func fileSource(path string) (*source, error) {
	if path == "" {
		return nil, usagef("--registry file: needs a path: file:PATH")
	}
	f, err := registry.NewFile(path)
	if err != nil {
		if !errors.Is(err, sender.ErrRegistry) {
			err = fmt.Errorf("%w: %w", sender.ErrRegistry, err)
		}
		return nil, fmt.Errorf("%w (fix the file or pass another --registry)", err)
	}
	return &source{
		desc: "file " + path,
		reg:  f,
		names: func(context.Context) ([]string, error) {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", sender.ErrRegistry, err)
			}
			cfg, err := registry.ParseClusterConfig(data)
			if err != nil {
				return nil, fmt.Errorf("%w: cluster config file %s: %v", sender.ErrRegistry, path, err)
			}
			names := make([]string, 0, len(cfg.Nodes))
			for n := range cfg.Nodes {
				names = append(names, n)
			}
			sort.Strings(names)
			return names, nil
		},
		close: func() { _ = f.Close() },
	}, nil
}

// kubernetesSource reads ClusterNodes as kubectl would: --kubeconfig (else
// $KUBECONFIG, else ~/.kube/config), --context, -n (else the context's
// namespace, else "default").
func (o *globalOptions) kubernetesSource() (*source, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.kubeCtx}
	overrides.Context.Namespace = o.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: no usable kubeconfig (%v); pass --kubeconfig, or --registry file:PATH or static:NAME=HOST:PORT to work without Kubernetes", sender.ErrRegistry, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("%w: kubeconfig namespace: %v", sender.ErrRegistry, err)
	}
	reg, err := kube.NewRegistry(cfg, ns)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sender.ErrRegistry, err)
	}
	scheme := runtime.NewScheme()
	if err := skycallv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sender.ErrRegistry, err)
	}
	src := &source{
		desc:  fmt.Sprintf("ClusterNodes of namespace %s (%s)", ns, cfg.Host),
		reg:   reg,
		close: func() { _ = reg.Close() },
	}
	src.names = func(ctx context.Context) ([]string, error) {
		var list skycallv1.ClusterNodeList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("%w: list ClusterNodes in namespace %s: %v (check -n and that you may list clusternodes.cluster.skycall.io)", sender.ErrRegistry, ns, err)
		}
		// Which name a ClusterNode answers to is the registry's call (the
		// operator's status, a conflict, a default): offer every name it
		// might carry, and keep those the registry knows.
		seen := map[string]bool{}
		var names []string
		for _, cn := range list.Items {
			for _, n := range []string{cn.Status.NodeName, cn.Spec.NodeName, cn.Name} {
				if n == "" || seen[n] {
					continue
				}
				seen[n] = true
				e, err := src.lookup(ctx, n)
				if err != nil {
					return nil, err
				}
				if e.State != registry.Absent {
					names = append(names, n)
				}
			}
		}
		sort.Strings(names)
		return names, nil
	}
	return src, nil
}

// lookup asks the registry about node, waiting (within ctx) while it cannot
// tell yet, as a Kubernetes registry does until its first list arrives.
func (s *source) lookup(ctx context.Context, node string) (registry.Entry, error) {
	changed := make(chan struct{}, 1)
	stop := s.reg.Watch(node, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer stop()
	for {
		e, err := s.reg.Lookup(node)
		if err != nil {
			return e, fmt.Errorf("%w (%s)", err, s.desc)
		}
		if e.State != registry.Unknown {
			return e, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return e, fmt.Errorf("%w: the %s did not load within --timeout: %v", sender.ErrRegistry, s.desc, ctx.Err())
		}
	}
}

// openNode opens the registry and resolves node in it within --timeout
// (see resolve): the start of every command that talks to one node. The
// caller closes the source.
func (o *globalOptions) openNode(ctx context.Context, node string) (*source, registry.Entry, error) {
	src, err := o.openSource()
	if err != nil {
		return nil, registry.Entry{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	entry, err := o.resolve(rctx, src, node)
	if err != nil {
		src.Close()
		return nil, entry, err
	}
	return src, entry, nil
}

// resolve checks node before a command uses it, so that a typo fails at
// once with the names the registry does know, instead of waiting for a node
// that will never appear. A node that is not ready is waited for (the
// library does), with a note saying so.
func (o *globalOptions) resolve(ctx context.Context, src *source, node string) (registry.Entry, error) {
	e, err := src.lookup(ctx, node)
	if err != nil {
		return e, err
	}
	switch e.State {
	case registry.Absent:
		known, _ := src.names(ctx)
		hint := "no nodes at all: check --registry, -n or --context"
		if len(known) > 0 {
			if len(known) > 12 {
				known = append(known[:12:12], "...")
			}
			hint = "known nodes: " + strings.Join(known, ", ")
		}
		return e, fmt.Errorf("%w: node %q is not in the %s (%s)", sender.ErrUnknownNode, node, src.desc, hint)
	case registry.Down:
		reason := ""
		if e.Reason != "" {
			reason = " (" + e.Reason + ")"
		}
		return e, fmt.Errorf("%w: node %q is marked down in the %s%s; nothing was sent", sender.ErrNodeDown, node, src.desc, reason)
	case registry.NotReady:
		fmt.Fprintf(o.errOut, "Waiting up to %v for node %q: not ready in the %s (%s)\n", o.timeout, node, src.desc, orNone(e.Reason))
	}
	return e, nil
}

func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// explain adds what the user can do to a failure of a command on node, and
// marks a node that never became ready.
func explain(err error, node string, e registry.Entry, timeout time.Duration) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		if e.State == registry.NotReady {
			return notReadyError{fmt.Errorf("%w (node %q stayed not ready; 'skycall nodes' shows why)", err, node)}
		}
		if errors.As(err, new(*net.OpError)) {
			return fmt.Errorf("%w (no connection to node %q at %s within --timeout %v: check that it listens there)", err, node, e.Address, timeout)
		}
		return fmt.Errorf("%w (waited --timeout %v; raise it, or check the node with 'skycall ping %s')", err, timeout, node)
	}
	return err
}
