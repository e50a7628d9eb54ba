package controllers

import "strconv"

// The endpoint registry: one ConfigMap per namespace that has ClusterNodes.
// What each ClusterNode means (registry.ClusterNodeEntries) and both files'
// formats (registry.FormatClusterConfig, registry.FormatNodesJSON, and
// their readers) live in sender/registry, beside the senders that read
// them, so that the operator and a sender cannot disagree.
const (
	// RegistryConfigMapName is the name of the registry ConfigMap.
	RegistryConfigMapName = "skycall-registry"
	// RegistryLuaKey holds skynet's cluster config (for cluster.reload).
	RegistryLuaKey = "clustername.lua"
	// RegistryJSONKey holds the same entries for programs.
	RegistryJSONKey = "nodes.json"
	// RegistryLabel marks registry ConfigMaps (value "true").
	RegistryLabel = "cluster.skycall.io/registry"
)

// nextGeneration is the generation of the registry document the operator
// is about to write, given what it is replacing.
//
// The generation must never go backwards: not when someone edits the
// ConfigMap (even its generation), strips its label so that the operator's
// cache loses it, deletes it, or when the operator restarts in between, so
// that a reader comparing generations never takes a new registry for an
// old one. A counter kept in the ConfigMap dies with it, and one kept in
// the operator's memory dies with the process; any other object holding a
// high-water mark can be deleted as well (and writing to Namespaces would
// need a permission an operator should not have). So the generation is
// tied to the one counter that survives all of these: the API server's
// resourceVersion of ConfigMaps, which since Kubernetes 1.34 (KEP-5504) is
// an integer that orders all writes to one resource
// (resourceversion.CompareResourceVersion).
//
// The invariant: every generation the operator publishes is at most the
// resourceVersion of the write that publishes it. It holds because a new
// generation is one more than the resourceVersion basis of the object (or
// list) read before the write, and the write's own resourceVersion is
// larger than that basis:
//
//   - replacing a ConfigMap read at resourceVersion rv (the write is
//     conditional on rv, so nothing came in between): max(rv, previous)+1,
//     where previous is the document's own generation, trusted only when
//     it is at most rv (anything larger is not one the operator wrote);
//   - creating one (none found, deleted or never there): the
//     resourceVersion of a quorum list of ConfigMaps taken just before,
//     plus one. That list's resourceVersion is at least that of every
//     ConfigMap write before it, deleted ones included, so the new
//     generation is above every generation ever published for this
//     namespace, whatever happened to the operator meanwhile.
//
// Generations therefore skip numbers (they follow the cluster's writes).
// Restoring etcd from a backup rewinds resourceVersions, and the registry
// with them; that is a rewind of the whole cluster, not a regression.
func nextGeneration(previous int64, basisRV string) int64 {
	rv, err := strconv.ParseInt(basisRV, 10, 64)
	if err != nil || rv < 0 {
		// Not an integer resourceVersion (an API server without
		// KEP-5504's guarantee): count on from the document alone.
		return previous + 1
	}
	if previous > rv {
		previous = 0 // not a generation the operator published
	}
	return max(previous, rv) + 1
}
