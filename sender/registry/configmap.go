package registry

// The registry ConfigMap: one per namespace that has ClusterNodes, written
// by the operator, read by senders (mounted as files, or through the API)
// and by skynet (clustername.lua).
const (
	// ConfigMapName is the name of the registry ConfigMap.
	ConfigMapName = "skycall-registry"
	// ConfigMapLuaKey holds skynet's cluster config (FormatClusterConfig).
	ConfigMapLuaKey = "clustername.lua"
	// ConfigMapJSONKey holds the same entries for programs (FormatNodesJSON).
	ConfigMapJSONKey = "nodes.json"
	// ConfigMapLabel marks registry ConfigMaps (value "true").
	ConfigMapLabel = "cluster.skycall.io/registry"
	// ConfigMapMaxBytes bounds the registry's data: the API server refuses
	// a ConfigMap whose keys and values add up to more than 1 MiB, about
	// 14,000 nodes named like node-01234 with IPv4 addresses.
	ConfigMapMaxBytes = 1<<20 - len(ConfigMapLuaKey) - len(ConfigMapJSONKey)
)
