package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/skycall-io/skycall/sender/clusterconfig"
)

// Names that are not Lua identifiers are written so that skynet's loader
// (a Lua chunk whose environment is the node table) takes them; names the
// rules refuse (a keyword, _ENV) are left out and returned; nodes not
// ready yet have no line.
func TestClusterConfigLines(t *testing.T) {
	lua, omitted := FormatClusterConfig("ns", []Entry{
		{Node: "db", State: Ready, Address: "10.0.0.7:2528"},
		{Node: "end", State: Ready, Address: "h:1"},
		{Node: "game-1", State: Down},
		{Node: "waiting", State: NotReady},
		{Node: "_ENV", State: Down},
		{Node: "db.eu", State: Ready, Address: "h:1"},
	})
	if len(omitted) != 2 || omitted[0].Node != "end" || omitted[1].Node != "_ENV" {
		t.Fatalf("omitted %+v, want end and _ENV", omitted)
	}
	want := []string{`db = "10.0.0.7:2528"`, `_ENV["game-1"] = false`, `_ENV["db.eu"] = "h:1"`}
	got := strings.Split(strings.TrimSpace(lua), "\n")[1:]
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("clustername.lua lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// What the writer writes, the parser (the File registry's) reads back.
func TestClusterConfigReadsBack(t *testing.T) {
	entries := []Entry{
		{Node: "db", State: Ready, Address: "10.0.0.7:2528"},
		{Node: "db.eu", State: Ready, Address: "[fd00::1]:1"},
		{Node: "game-1", State: Down},
		{Node: "waiting", State: NotReady},
	}
	lua, _ := FormatClusterConfig("ns", entries)
	cfg, err := ParseClusterConfig([]byte(lua))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Entry{
		"db":     {Node: "db", State: Ready, Address: "10.0.0.7:2528"},
		"db.eu":  {Node: "db.eu", State: Ready, Address: "[fd00::1]:1"},
		"game-1": {Node: "game-1", State: Down},
	}
	if len(cfg.Nodes) != len(want) {
		t.Fatalf("file registry read %v, want %v", cfg.Nodes, want)
	}
	for name, w := range want {
		got := cfg.Nodes[name]
		if got.State != w.State || got.Address != w.Address {
			t.Errorf("%s: file registry read %+v, want %+v", name, got, w)
		}
	}
}

// Injection: whatever name or address the writer is given (an
// object stored before the CRD rejected it, a status written by someone
// else), no line it writes changes what another line means. Each hostile
// entry sits between two honest ones, which must read back unchanged, with
// __nowaiting still off.
func TestClusterConfigWriterResistsInjection(t *testing.T) {
	hostile := []Entry{
		{Node: "_ENV", State: Ready, Address: "10.0.0.66:1"},
		{Node: "__nowaiting", State: Down},
		{Node: "__nowaiting", State: Ready, Address: "10.0.0.66:1"},
		{Node: "_G", State: Down},
		{Node: "end", State: Down},
		{Node: "x\"] = false; __nowaiting = true; _ENV[\"y", State: Down},
		{Node: "x\nb = false", State: Down},
		{Node: "x\rb = false", State: Down},
		{Node: "\u200bzero-width", State: Down},
		{Node: "--[[", State: Down},
		{Node: "]]", State: Down},
		{Node: "x\\", State: Down},
		{Node: "x\x00y", State: Down},
		{Node: "\xff\xfe", State: Down},
		{Node: "addr-quote", State: Ready, Address: "h\":1\"\n__nowaiting = true --:1"},
		{Node: "addr-newline", State: Ready, Address: "h:1\nb = false"},
		{Node: "addr-noport", State: Ready, Address: "h"},
		{Node: "", State: Down},
	}
	for _, h := range hostile {
		entries := []Entry{
			{Node: "a", State: Ready, Address: "10.0.0.1:1"},
			h,
			{Node: "b", State: Ready, Address: "10.0.0.2:2"},
		}
		lua, omitted := FormatClusterConfig("ns\n__nowaiting = true", entries)
		cfg, err := ParseClusterConfig([]byte(lua))
		if err != nil {
			t.Errorf("entry %+q: the file does not load: %v\n%s", h.Node, err, lua)
			continue
		}
		if cfg.NoWait {
			t.Errorf("entry %+q switched __nowaiting on:\n%s", h.Node, lua)
		}
		for _, want := range []Entry{entries[0], entries[2]} {
			if got := cfg.Nodes[want.Node]; got.State != want.State || got.Address != want.Address {
				t.Errorf("entry %+q changed node %s to %+v:\n%s", h.Node, want.Node, got, lua)
			}
		}
		got, written := cfg.Nodes[h.Node]
		wasOmitted := len(omitted) == 1 && omitted[0].Node == h.Node
		switch {
		case wasOmitted && written:
			t.Errorf("entry %+q reported as left out but read back as %+v", h.Node, got)
		case !wasOmitted && (!written || got.State != h.State || got.Address != h.Address):
			t.Errorf("entry %+q read back as %+v (written %v)\n%s", h.Node, got, written, lua)
		}
		if len(cfg.Nodes) != 2+btoi(written) {
			t.Errorf("entry %+q: read %d nodes, want %d: %v", h.Node, len(cfg.Nodes), 2+btoi(written), cfg.Nodes)
		}
		if strings.Count(lua, "\n") != 1+len(cfg.Nodes) {
			t.Errorf("entry %+q: %d lines for %d nodes:\n%s", h.Node, strings.Count(lua, "\n"), len(cfg.Nodes), lua)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// skynet reads every key starting with "__" as an option and anything but
// false and nil as true; the parser does the same, and no such key is a node.
func TestClusterConfigOptionsAreReadAsSkynetReadsThem(t *testing.T) {
	for _, tc := range []struct {
		src    string
		noWait bool
	}{
		{`__nowaiting = true`, true},
		{`__nowaiting = "yes"`, true},
		{`__nowaiting = false`, false},
		{`__nowaiting = true; __nowaiting = nil`, false},
		{`_ENV["__nowaiting"] = true`, true},
		{`__other = "10.0.0.1:1"`, false},
	} {
		cfg, err := ParseClusterConfig([]byte(tc.src))
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if cfg.NoWait != tc.noWait || len(cfg.Nodes) != 0 {
			t.Errorf("%s: NoWait %v nodes %v, want NoWait %v and no node", tc.src, cfg.NoWait, cfg.Nodes, tc.noWait)
		}
	}
}

// Lua's comments and escapes mean what they mean to skynet's loader.
func TestClusterConfigReadsLuaCommentsAndEscapes(t *testing.T) {
	cfg, err := ParseClusterConfig([]byte("--[==[ db = \"6.6.6.6:6\"\n]] still a comment ]==] a = \"h\\u{41}\\65\\x41:1\"\n" +
		"b = 'h\\z\n   ost:2' -- \\z skips the line break\n--[[]] c = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Entry{
		"a": {Node: "a", State: Ready, Address: "hAAA:1"},
		"b": {Node: "b", State: Ready, Address: "host:2"},
		"c": {Node: "c", State: Down, Reason: "set to false in the cluster config"},
	}
	if len(cfg.Nodes) != len(want) {
		t.Fatalf("read %v, want %v", cfg.Nodes, want)
	}
	for k, v := range want {
		if cfg.Nodes[k] != v {
			t.Errorf("%s = %+v, want %+v", k, cfg.Nodes[k], v)
		}
	}
}

// Both files say the same about every entry: nodes.json lists what the Lua
// file leaves out (not ready, or not writable) as notReady.
func TestNodesJSONAgreesWithClusterConfig(t *testing.T) {
	entries := []Entry{
		{Node: "a", State: Ready, Address: "10.0.0.1:1"},
		{Node: "b", State: Down},
		{Node: "c", State: NotReady},
		{Node: "g", State: Draining, Address: "10.0.0.2:1", Incarnation: "uid-g"},
		{Node: "__nowaiting", State: Down},
		{Node: "d", State: Ready, Address: "not an address"},
		{Node: "a", State: Down},
	}
	raw, err := FormatNodesJSON(9, entries)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ParseNodesJSON([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if doc.Generation != 9 {
		t.Errorf("generation %d, want 9", doc.Generation)
	}
	if !slices.Equal(doc.NotReady, []string{"__nowaiting", "c", "d", "g"}) || !slices.Equal(doc.Draining, []string{"g"}) {
		t.Errorf("nodes.json notReady %q draining %q: a draining node must be in both, so that older readers take it for not ready", doc.NotReady, doc.Draining)
	}
	if lua, _ := FormatClusterConfig("", entries); strings.Contains(lua, "g =") {
		t.Errorf("clustername.lua has a line for a draining node:\n%s", lua)
	}
	for name, want := range map[string]State{"a": Ready, "b": Down, "c": NotReady, "g": Draining, "__nowaiting": NotReady, "d": NotReady, "e": Absent} {
		if got := doc.Lookup(name); got.State != want {
			t.Errorf("nodes.json: %s is %v, want %v (%s)", name, got.State, want, raw)
		}
	}
	if _, err := ParseNodesJSON([]byte(`{"generation":1,"ready":{"a":"h:1"},"down":["a"],"notReady":[]}`)); err == nil {
		t.Error("a node listed twice was accepted")
	}
	if _, err := ParseNodesJSON([]byte(`{"generation":1,"ready":{"a":"h:1"},"down":[],"notReady":[],"draining":["a"]}`)); err == nil {
		t.Error("a draining node missing from notReady was accepted")
	}
}

// FuzzClusterConfigRoundTrip: whatever entries the writer is given, what it
// writes parses back to exactly the entries it did not report as left out
// (Ready and Down; others have no line), __nowaiting stays off, and
// nodes.json and ConfigTable (what skycall-agent pushes) say the same.
func FuzzClusterConfigRoundTrip(f *testing.F) {
	f.Add("db", "10.0.0.7:2528", uint8(Ready), "end", "h:1", uint8(Down), "ns")
	f.Add("_ENV", "x:1", uint8(Ready), "__nowaiting", "", uint8(Down), "ns\n")
	f.Add("a\"]=1--", "[fd00::1]:2", uint8(Ready), "\u200b", "h\n:1", uint8(Ready), "--[[")
	f.Add("x\\", "h:65535", uint8(Ready), "x\\", "h:1", uint8(Down), "")
	f.Fuzz(func(t *testing.T, n1, a1 string, s1 uint8, n2, a2 string, s2 uint8, comment string) {
		entries := []Entry{
			{Node: n1, State: State(s1 % 6), Address: a1},
			{Node: "anchor", State: Ready, Address: "10.0.0.1:1"},
			{Node: n2, State: State(s2 % 6), Address: a2},
		}
		lua, omitted := FormatClusterConfig(comment, entries)
		cfg, err := ParseClusterConfig([]byte(lua))
		if err != nil {
			t.Fatalf("written file does not parse: %v\n%s", err, lua)
		}
		if cfg.NoWait {
			t.Fatalf("written file switches __nowaiting on:\n%s", lua)
		}
		// The writer's contract, restated: in order, an entry is left out
		// when its name is empty, fails CheckNodeName on a line, is not
		// UTF-8, was given before, or it is Ready at an address
		// CheckAddress refuses.
		want := map[string]Entry{}
		var wantOmitted []string
		for _, e := range entries {
			_, dup := want[e.Node]
			line := e.State == Ready || e.State == Down
			if e.Node == "" || (line && clusterconfig.CheckNodeName(e.Node) != nil) || !utf8.ValidString(e.Node) || dup || (e.State == Ready && clusterconfig.CheckAddress(e.Address) != nil) {
				wantOmitted = append(wantOmitted, e.Node)
				continue
			}
			want[e.Node] = e
		}
		if len(omitted) != len(wantOmitted) {
			t.Fatalf("left out %+v, want %q", omitted, wantOmitted)
		}
		for name, e := range want {
			if e.State != Ready && e.State != Down {
				delete(want, name) // no line
			}
		}
		if len(cfg.Nodes) != len(want) {
			t.Fatalf("read back %v, want %v\n%s", cfg.Nodes, want, lua)
		}
		for name, w := range want {
			if got := cfg.Nodes[name]; got.State != w.State || (w.State == Ready && got.Address != w.Address) {
				t.Fatalf("%q read back as %+v, want %+v\n%s", name, got, w, lua)
			}
		}
		table, tableOmitted := ConfigTable(entries, false)
		if len(tableOmitted) != len(omitted) || len(table) != len(cfg.Nodes)+1 || table["__nowaiting"] != false {
			t.Fatalf("ConfigTable = %v leaving out %v; the file reads %v leaving out %v", table, tableOmitted, cfg.Nodes, omitted)
		}
		for name, e := range cfg.Nodes {
			if want := map[State]any{Ready: e.Address, Down: false}[e.State]; table[name] != want {
				t.Fatalf("ConfigTable[%q] = %v, the file reads %+v", name, table[name], e)
			}
		}
		raw, err := FormatNodesJSON(1, entries)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := ParseNodesJSON([]byte(raw))
		if err != nil {
			t.Fatalf("nodes.json does not parse: %v\n%s", err, raw)
		}
		for name, w := range want {
			if got := doc.Lookup(name); got.State != w.State || got.Address != cfg.Nodes[name].Address {
				t.Fatalf("nodes.json says %+v for %q, the cluster config %+v", got, name, w)
			}
		}
	})
}

// FuzzParseClusterConfig: any input gives a config or a *ParseError, never
// a panic; and what it accepts, written again, reads back the same.
func FuzzParseClusterConfig(f *testing.F) {
	f.Add([]byte("db = \"10.0.0.7:2528\"\ncache = false\n__nowaiting = true\n"))
	f.Add([]byte("--[==[ x ]==] _ENV[\"a\\u{7FFFFFFF}\"] = 'h\\z\n :1'; b = nil"))
	f.Add([]byte("a = \"\\300\" --[[\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseClusterConfig(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		var entries []Entry
		for _, e := range cfg.Nodes {
			entries = append(entries, e)
		}
		lua, omitted := FormatClusterConfig("again", entries)
		again, err := ParseClusterConfig([]byte(lua))
		if err != nil {
			t.Fatalf("rewritten config does not parse: %v\n%s", err, lua)
		}
		for name, e := range cfg.Nodes {
			left := false
			for _, o := range omitted {
				left = left || o.Node == name
			}
			if got := again.Nodes[name]; !left && (got.State != e.State || got.Address != e.Address) {
				t.Fatalf("%q: read %+v, after rewriting %+v", name, e, got)
			}
		}
	})
}
