package controllers

// RenderClusterConfig is the writer of the registry's clustername.lua, as
// the registry controller puts it in each namespace's ConfigMap. It is
// exported so that tests outside the operator (test/interop) load the very
// file the operator writes into a real skynet node and into
// registry.NewFile, instead of a hand-written copy that could drift.
func RenderClusterConfig(namespace string, entries []RegistryEntry) string {
	return renderClusterConfig(namespace, entries)
}
