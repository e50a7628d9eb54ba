package kube

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/sender/clusterconfig"
	"github.com/skycall-io/skycall/sender/registry"
)

// What a ClusterNode means to a sender, decided here and only here: the
// Kubernetes registry (in-pod Go senders) and the operator (the registry
// ConfigMap that skynet nodes and File registries read) both call EntryOf,
// so a Go pod and a skynet pod never act differently on the same objects.
//
// The operator writes status after spec changes, so for a moment the two
// disagree. The rule, case by case:
//
//   - spec.down set while status still says Ready: Down. spec.down is a
//     person taking a node out of service now (skynet's `name = false`);
//     it needs nothing resolved, so waiting for the operator would only keep
//     traffic flowing to a node someone has just said must not get any.
//
//   - spec.down cleared while status still says AdministrativelyDown:
//     NotReady (callers wait). The person wants the node back, so failing
//     callers is wrong; but no address has been resolved for the new spec
//     yet (a Service node has none until the operator looks), so using one
//     is wrong too. In skynet's file that is "no line": a skynet node that
//     had loaded `name = false` keeps it until the address line arrives
//     (skynet merges reloads), which is at most one operator pass later.
//
//   - two live ClusterNodes claiming one node name: NotReady, naming both
//     objects in the reason. Not Ready at either address (picking one at
//     random would split senders between two nodes); not Absent (the name
//     is declared, so a no-wait sender must not fail it as unknown, and
//     nodes.json lists it as notReady); not Down (a conflict is usually a
//     moment in a rename or a move from one object to another, and callers
//     should ride it out within their deadlines rather than fail).
//
//   - a node whose endpoints are all terminating (Ready=False, reason
//     Draining, for the current generation): Draining, with the address
//     and incarnation being drained. skynet's file has no word for it, so
//     it gets no line there (skynet senders wait, as for NotReady);
//     nodes.json lists it as notReady, and also under draining.
//
// And a status the operator wrote (or anyone with status access) is
// trusted only as far as a skynet node can safely use it: a node name that
// fails clusterconfig.CheckNodeName or an address that fails
// clusterconfig.CheckAddress makes the node NotReady with the reason, never
// a line in skynet's file.

// NodeNameOf is the node name a ClusterNode serves: status.nodeName as the
// operator last resolved it, or spec.nodeName / metadata.name before it
// has. (The last resolved name stays in force until the operator moves it,
// like the last resolved address.)
func NodeNameOf(cn *skycallv1.ClusterNode) string {
	if cn.Status.NodeName != "" {
		return cn.Status.NodeName
	}
	return cn.EffectiveNodeName()
}

// EntryOf says what node means to a sender given the live ClusterNodes
// (not being deleted) of one namespace whose NodeNameOf is node. With no
// claimant the node is Absent.
func EntryOf(node string, claimants []*skycallv1.ClusterNode) registry.Entry {
	switch len(claimants) {
	case 0:
		return registry.Entry{Node: node, State: registry.Absent}
	case 1:
	default:
		names := make([]string, len(claimants))
		for i, cn := range claimants {
			names[i] = cn.Name
		}
		slices.Sort(names)
		return registry.Entry{Node: node, State: registry.NotReady, Reason: fmt.Sprintf(
			"%s: node name %q is claimed by ClusterNodes %s in namespace %s; give each a unique spec.nodeName",
			skycallv1.ReasonNameConflict, node, strings.Join(names, ", "), claimants[0].Namespace)}
	}
	cn := claimants[0]
	if err := clusterconfig.CheckNodeName(node); err != nil {
		return registry.Entry{Node: node, State: registry.NotReady, Reason: fmt.Sprintf(
			"%s: ClusterNode %s: %v; set spec.nodeName to another name", skycallv1.ReasonInvalidNodeName, cn.Name, err)}
	}
	if cn.Spec.Down {
		return registry.Entry{Node: node, State: registry.Down, Reason: fmt.Sprintf("ClusterNode %s has spec.down set", cn.Name)}
	}
	cond := meta.FindStatusCondition(cn.Status.Conditions, skycallv1.ConditionReady)
	switch {
	case cond == nil:
		return registry.Entry{Node: node, State: registry.NotReady, Reason: fmt.Sprintf("ClusterNode %s has no registry.Ready condition yet", cn.Name)}
	case cond.Status == metav1.ConditionTrue && cn.Status.Address != "":
		if err := clusterconfig.CheckAddress(cn.Status.Address); err != nil {
			return registry.Entry{Node: node, State: registry.NotReady, Reason: fmt.Sprintf("ClusterNode %s: status.%v", cn.Name, err)}
		}
		return registry.Entry{Node: node, State: registry.Ready, Address: cn.Status.Address, Incarnation: incarnationAt(cn, cn.Status.Address)}
	case cond.Status != metav1.ConditionTrue && cond.Reason == skycallv1.ReasonDraining && cond.ObservedGeneration >= cn.Generation:
		// The operator's word on the current spec: the endpoints it
		// resolved are all terminating. (From an older spec it would be
		// about endpoints the node may no longer follow: NotReady below.)
		e := registry.Entry{Node: node, State: registry.Draining, Reason: fmt.Sprintf("ClusterNode %s: %s", cn.Name, cond.Message)}
		for _, ep := range cn.Status.Endpoints {
			if ep.Terminating && clusterconfig.CheckAddress(ep.Address) == nil {
				e.Address, e.Incarnation = ep.Address, string(ep.PodUID)
				break
			}
		}
		return e
	case cond.Reason == skycallv1.ReasonAdministrativelyDown && cond.ObservedGeneration >= cn.Generation:
		// The operator's word on the current spec (this operator only says
		// so when spec.down is set, handled above).
		return registry.Entry{Node: node, State: registry.Down, Reason: fmt.Sprintf("ClusterNode %s: %s", cn.Name, cond.Message)}
	case cond.Reason == skycallv1.ReasonAdministrativelyDown:
		// From before spec.down was cleared: see the rule above.
		return registry.Entry{Node: node, State: registry.NotReady, Reason: fmt.Sprintf(
			"ClusterNode %s: spec.down was cleared; waiting for the operator to resolve it", cn.Name)}
	default:
		return registry.Entry{Node: node, State: registry.NotReady, Reason: fmt.Sprintf("ClusterNode %s: Ready=%s %s: %s",
			cn.Name, cond.Status, cond.Reason, cond.Message)}
	}
}

// incarnationAt is the UID of the pod the operator resolved addr to, or ""
// for a fixed address or a pod it does not know.
func incarnationAt(cn *skycallv1.ClusterNode, addr string) string {
	for _, ep := range cn.Status.Endpoints {
		if ep.Address == addr && !ep.Terminating {
			return string(ep.PodUID)
		}
	}
	return ""
}

// ClusterNodeEntries applies EntryOf to every node name that the live
// ClusterNodes of one namespace claim: one entry per name, sorted by name.
// It is what the operator writes into the registry ConfigMap.
func ClusterNodeEntries(nodes []skycallv1.ClusterNode) []registry.Entry {
	byName := make(map[string][]*skycallv1.ClusterNode, len(nodes))
	for i := range nodes {
		if cn := &nodes[i]; cn.DeletionTimestamp.IsZero() {
			name := NodeNameOf(cn)
			byName[name] = append(byName[name], cn)
		}
	}
	out := make([]registry.Entry, 0, len(byName))
	for name, claimants := range byName {
		out = append(out, EntryOf(name, claimants))
	}
	slices.SortFunc(out, func(a, b registry.Entry) int { return strings.Compare(a.Node, b.Node) })
	return out
}
