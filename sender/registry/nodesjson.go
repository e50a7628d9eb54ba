package registry

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// NodesDocument is nodes.json, the registry ConfigMap's file for programs:
// the same entries as the cluster config, compact so that a namespace of
// 10,000 nodes fits in one ConfigMap:
//
//	{"generation":48213,"ready":{"db":"10.0.0.7:2528"},"down":["login"],"notReady":["game_1"]}
//
// Every node the namespace's ClusterNodes declare is in exactly one of
// ready (node to address), down and notReady (both sorted). A node in none
// is absent. A Draining node is in notReady, and also in draining (sorted),
// so that a reader that predates draining takes it for not ready, which
// makes its callers wait just the same:
//
//	{"generation":48214,"ready":{},"down":[],"notReady":["game_1"],"draining":["game_1"]}
//
// Generation increases with every change of the document (by at
// least one; it can skip numbers) and never decreases, even when the
// ConfigMap is deleted or the operator restarts.
type NodesDocument struct {
	Generation int64             `json:"generation"`
	Ready      map[string]string `json:"ready"`
	Down       []string          `json:"down"`
	NotReady   []string          `json:"notReady"`
	Draining   []string          `json:"draining,omitempty"`
}

// FormatNodesJSON encodes nodes.json for entries. Entries the cluster
// config cannot carry (see FormatClusterConfig) are listed as notReady, so
// that both files give every node the same meaning; Absent and Unknown
// entries are left out, and so are names JSON cannot carry (not UTF-8).
func FormatNodesJSON(generation int64, entries []Entry) (string, error) {
	doc := NodesDocument{Generation: generation, Ready: map[string]string{}, Down: []string{}, NotReady: []string{}}
	ok, bad := writable(entries)
	listed := make(map[string]bool, len(ok))
	for _, e := range ok {
		listed[e.Node] = true
		switch e.State {
		case Ready:
			doc.Ready[e.Node] = e.Address
		case Down:
			doc.Down = append(doc.Down, e.Node)
		case NotReady:
			doc.NotReady = append(doc.NotReady, e.Node)
		case Draining:
			doc.NotReady = append(doc.NotReady, e.Node)
			doc.Draining = append(doc.Draining, e.Node)
		}
	}
	for _, e := range bad {
		if e.Node != "" && utf8.ValidString(e.Node) && !listed[e.Node] {
			listed[e.Node] = true
			doc.NotReady = append(doc.NotReady, e.Node)
		}
	}
	slices.Sort(doc.Down)
	slices.Sort(doc.NotReady)
	slices.Sort(doc.Draining)
	raw, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encode nodes.json: %w", err)
	}
	return string(raw), nil
}

// ParseNodesJSON reads nodes.json. It fails on a document that is not
// JSON, or that lists a node twice or with an empty name, or lists as
// draining a node that is not in notReady.
func ParseNodesJSON(data []byte) (*NodesDocument, error) {
	var doc NodesDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("nodes.json: %w", err)
	}
	seen := make(map[string]bool, len(doc.Ready)+len(doc.Down)+len(doc.NotReady))
	add := func(name string) error {
		if name == "" {
			return fmt.Errorf("nodes.json: empty node name")
		}
		if seen[name] {
			return fmt.Errorf("nodes.json: node %q is listed twice", name)
		}
		seen[name] = true
		return nil
	}
	for name := range doc.Ready {
		if err := add(name); err != nil {
			return nil, err
		}
	}
	for _, list := range [][]string{doc.Down, doc.NotReady} {
		for _, name := range list {
			if err := add(name); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range doc.Draining {
		if !slices.Contains(doc.NotReady, name) {
			return nil, fmt.Errorf("nodes.json: node %q is draining but not in notReady", name)
		}
	}
	return &doc, nil
}

// Lookup says what the document means for node.
func (d *NodesDocument) Lookup(node string) Entry {
	if addr, ok := d.Ready[node]; ok {
		return Entry{Node: node, State: Ready, Address: addr}
	}
	if slices.Contains(d.Down, node) {
		return Entry{Node: node, State: Down, Reason: "down in nodes.json"}
	}
	if slices.Contains(d.Draining, node) {
		return Entry{Node: node, State: Draining, Reason: "draining in nodes.json"}
	}
	if slices.Contains(d.NotReady, node) {
		return Entry{Node: node, State: NotReady, Reason: "not ready in nodes.json"}
	}
	return Entry{Node: node, State: Absent}
}
