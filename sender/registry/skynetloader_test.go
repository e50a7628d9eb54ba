package registry

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// skynetLua is skynet's own Lua interpreter (Lua 5.5 from the skynet source,
// built once with skynet by hack/skynet.sh). When there is no skynet source or no C
// compiler here, the test skips saying how to get them, and fails instead
// under CI=true or SKYCALL_REQUIRE_SKYNET=1; a failed build always fails.
func skynetLua(t *testing.T) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join("..", "..", "hack", "skynet.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := fmt.Sprintf("skynet's Lua is not available (%v): %s\nhack/skynet.sh needs the skynet source "+
			"(SKYNET_SRC, or shared/skynet/upstream beside the repository), gcc and make",
			err, strings.TrimSpace(stderr.String()))
		var exit *exec.ExitError
		unavailable := errors.As(err, &exit) && exit.ExitCode() == 3
		if !unavailable || os.Getenv("CI") == "true" || os.Getenv("SKYCALL_REQUIRE_SKYNET") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return filepath.Join(lines[len(lines)-1], "lua")
}

// loadInSkynet loads each source as skynet's clusterd does
// (testdata/skynet_loadconfig.lua), in one Lua process: per source, nil
// when skynet would refuse it, or what the nodes and __nowaiting became.
func loadInSkynet(t *testing.T, lua string, srcs []string) [][]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"testdata/skynet_loadconfig.lua"}
	for i, src := range srcs {
		p := filepath.Join(dir, fmt.Sprintf("%d.lua", i))
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, err := exec.Command(lua, args...).Output()
	if err != nil {
		t.Fatalf("skynet's loader: %v", err)
	}
	results := make([][]string, len(srcs))
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		var n, count int
		var verdict string
		if _, err := fmt.Sscanf(lines[i], "FILE\t%d\t%s", &n, &verdict); err != nil || n < 1 || n > len(srcs) {
			t.Fatalf("skynet's loader printed %q", lines[i])
		}
		if verdict == "ERROR" {
			continue
		}
		if _, err := fmt.Sscanf(lines[i], "FILE\t%d\tOK\t%d", &n, &count); err != nil {
			t.Fatalf("skynet's loader printed %q", lines[i])
		}
		results[n-1] = append([]string{}, lines[i+1:i+1+count]...)
		i += count
	}
	return results
}

// inGo is what ParseClusterConfig read, in the loader's terms.
func inGo(cfg *ClusterConfig) []string {
	out := []string{}
	for name, e := range cfg.Nodes {
		if e.State == Down {
			out = append(out, "DOWN "+hex.EncodeToString([]byte(name)))
		} else {
			out = append(out, "READY "+hex.EncodeToString([]byte(name))+" "+hex.EncodeToString([]byte(e.Address)))
		}
	}
	if cfg.NoWait {
		out = append(out, "NOWAIT true")
	}
	slices.Sort(out)
	return out
}

// What the writer writes loads in skynet itself (its Lua
// 5.5, its loader) to exactly the nodes the Go parser reads, whatever names
// and addresses it is given; and the parser never accepts a file skynet
// refuses, nor reads one differently. Where the parser is stricter than
// skynet (it reads a subset of Lua), the case says so.
func TestClusterConfigLoadsTheSameInSkynet(t *testing.T) {
	lua := skynetLua(t)
	type tc struct {
		src        string
		goStricter string // why the parser may refuse what skynet takes
		written    bool   // the writer's output: the parser must take it
	}
	var cases []tc
	for _, src := range []struct{ src, stricter string }{
		{"db = \"10.0.0.7:2528\"\ncache = false\n__nowaiting = true\n", ""},
		{`__nowaiting = "yes"`, ""},
		{`__nowaiting = false`, ""},
		{`__nowaiting = true; __nowaiting = nil`, ""},
		{`_ENV["__nowaiting"] = 1`, "numbers are not values the parser reads"},
		{`__other = "10.0.0.1:1"`, ""},
		{"--[==[ db = \"6.6.6.6:6\"\n]] ]==] a = \"h\\u{41}\\65\\x41:1\"\nb = 'h\\z\n   ost:2'\n--[[]] c = false\n", ""},
		{`_ENV["\a\b\f\v\\\"\'"] = false`, ""},
		{`_ENV["a\u{7FFFFFFF}b\u{D800}\u{10FFFF}"] = false`, ""},
		{"_ENV['x\\\ny'] = false; _ENV['a\\\r\nb'] = false; _ENV['c\\\n\rd'] = false", ""},
		{"_ENV [ 'db' ] = 'h:1'", ""},
		{"db = \"h:1\" -- c\n;;db = nil", ""},
		{`_ENV = "x"`, "a bare _ENV is refused: it rebinds the table of every later line"},
		{"_ENV = \"x\"\ndb = \"h:1\"", ""},
		{`global = "h:1"`, "global is a Lua 5.5 keyword (skynet builds Lua with LUA_COMPAT_GLOBAL)"},
		{`end = "h:1"`, ""},
		{`db = true`, ""},
		{`db = 1`, ""},
		{`db = [[h:1]]`, "long strings are not read"},
		{`db = "noport"`, "an address must be host:port"},
		{`db = "h:1"x = false`, ""},
		{`db = "a_b:1"`, "an address must pass clusterconfig.CheckAddress, as in a push"},
		{`_ENV[""] = false`, "an empty node name is refused"},
		{"#!/x\ndb=\"h:1\"", ""},
		{"\xef\xbb\xbfdb = \"h:1\"", ""},
		{"db = \"h:1\" --[[ unfinished", ""},
		{`db = "\300"`, ""},
		{`db = "\xZZ"`, ""},
		{`db = "\q"`, ""},
		{`db = "h:1`, ""},
		{"db = \"h\n:1\"", ""},
	} {
		cases = append(cases, tc{src: src.src, goStricter: src.stricter})
	}

	// The writer's output for hostile and random entries.
	pieces := []string{"db", "end", "global", "_ENV", "_G", "__nowaiting", "__x", "a\"b", "a\\", "x\ny", "\r",
		"\u200b", "é", "\xff", "--[[", "]]", "[=[", "]=]", " ", "\t", "0", "_", "=", ";", "'", "\x00"}
	addrs := []string{"10.0.0.1:1", "[fd00::1]:2", "db.example.com:65535", "h\":1", "h:1\n__nowaiting = true",
		"noport", "h:0", "a_b:1", "h:1\"] = false --"}
	rng := rand.New(rand.NewPCG(17, 2))
	for i := 0; i < 300; i++ {
		var entries []Entry
		for j := 0; j < 2+rng.IntN(5); j++ {
			var name strings.Builder
			for k := 0; k < 1+rng.IntN(3); k++ {
				name.WriteString(pieces[rng.IntN(len(pieces))])
			}
			entries = append(entries, Entry{Node: name.String(), State: []State{Ready, Down, NotReady}[rng.IntN(3)],
				Address: addrs[rng.IntN(len(addrs))]})
		}
		src, _ := FormatClusterConfig(fmt.Sprintf("case %d\n__nowaiting = true", i), entries)
		cases = append(cases, tc{src: src, written: true})
	}

	srcs := make([]string, len(cases))
	for i, c := range cases {
		srcs[i] = c.src
	}
	skynet := loadInSkynet(t, lua, srcs)
	for i, c := range cases {
		cfg, err := ParseClusterConfig([]byte(c.src))
		switch {
		case err != nil && c.written:
			t.Errorf("the parser refuses what the writer wrote: %v\n%s", err, c.src)
		case err != nil && skynet[i] != nil && c.goStricter == "":
			t.Errorf("the parser refuses what skynet loads (%v) as %q: %v", skynet[i], c.src, err)
		case err == nil && skynet[i] == nil:
			t.Errorf("skynet refuses what the parser reads as %v: %q", inGo(cfg), c.src)
		case err == nil && !slices.Equal(inGo(cfg), skynet[i]):
			t.Errorf("%q:\n  skynet reads %v\n  the parser  %v", c.src, skynet[i], inGo(cfg))
		case err == nil && c.goStricter != "":
			t.Errorf("%q: the parser takes it, though the case says it should not (%s)", c.src, c.goStricter)
		}
		if c.written && skynet[i] != nil && slices.Contains(skynet[i], "NOWAIT true") {
			t.Errorf("the writer's output switches __nowaiting on in skynet:\n%s", c.src)
		}
	}
}
