// Package clusterconfig holds the rules of skynet's cluster config, the
// table that clusterd loads from clustername.lua or that skycall's Lua
// service takes in a push: what a node name may be, what an address may
// be, Lua's keywords, and a Lua lexer to read the file and literals with.
//
// Every side that decides one of these calls this package: the CRD's CEL
// rules are tested against it (controllers), the Lua service's own checks
// are tested against it in a real skynet (test/skynetagent), and the
// operator, the agent, the registries and the CLI call it directly. Both
// tests read one corpus, testdata/corpus.json, so no side can drift alone.
//
// It is public and below sender/registry because registry's public API
// (the file registry, the ConfigMap writer) applies these rules, and sender
// must not import controllers or cmd. The table skynet builds from
// registry entries is registry.ConfigTable, beside the file writer it must
// match: it takes registry.Entry, and registry imports this package.
package clusterconfig
