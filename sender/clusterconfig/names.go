package clusterconfig

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// keywords are Lua 5.5's reserved words, the Lua skynet ships (3rd/lua).
// "global" is among them: skynet builds Lua with LUA_COMPAT_GLOBAL, which
// still reads `global = x` as an assignment, but nothing here counts on a
// build flag, so "global" is never written bare and never names a node.
var keywords = map[string]bool{
	"and": true, "break": true, "do": true, "else": true, "elseif": true, "end": true,
	"false": true, "for": true, "function": true, "global": true, "goto": true, "if": true, "in": true,
	"local": true, "nil": true, "not": true, "or": true, "repeat": true, "return": true,
	"then": true, "true": true, "until": true, "while": true,
}

// Keywords lists Lua's reserved words, sorted.
func Keywords() []string {
	out := make([]string, 0, len(keywords))
	for k := range keywords {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// IsKeyword says whether s is a Lua reserved word.
func IsKeyword(s string) bool { return keywords[s] }

// IsName says whether s is a Lua name: an identifier that is not a keyword,
// so that it can be written bare as a table key (`{db = 1}`).
func IsName(s string) bool {
	if s == "" || !isIdentStart(s[0]) || keywords[s] {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdent(s[i]) {
			return false
		}
	}
	return true
}

// OptionPrefix starts the keys skynet reads as cluster options
// (__nowaiting), never as nodes.
const OptionPrefix = "__"

// MaxNodeName is the longest node name, in bytes.
const MaxNodeName = 63

var nodeNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// CheckNodeName says why name cannot name a node, or nil when it can: 1 to
// MaxNodeName bytes of ASCII letters, digits, '_', '.' and '-', starting
// with a letter or '_'; and not a name a reader of skynet's config would
// take for something else: a Lua keyword, _ENV (the config table itself),
// _G (the global table in any other chunk), or a name starting with "__"
// (a cluster option).
func CheckNodeName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("the node name is empty")
	case len(name) > MaxNodeName:
		return fmt.Errorf("node name %q is longer than %d bytes", name, MaxNodeName)
	case strings.HasPrefix(name, OptionPrefix):
		return fmt.Errorf("node name %q starts with %q, which skynet reads as a cluster option", name, OptionPrefix)
	case keywords[name]:
		return fmt.Errorf("node name %q is a Lua keyword", name)
	case name == "_ENV" || name == "_G":
		return fmt.Errorf("node name %q is reserved by Lua", name)
	case !nodeNamePattern.MatchString(name):
		return fmt.Errorf("node name %q must start with a letter or _ and hold only letters, digits, _, . and -", name)
	}
	return nil
}
