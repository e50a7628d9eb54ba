package registry

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/skycall-io/skycall/sender/clusterconfig"
)

// skynet's cluster config, written and read in one place.
//
// skynet's clusterd loads the file as a Lua chunk whose environment is an
// empty table (`load(source, "@"..file, "t", tmp)`), then walks that table:
// a key starting with "__" is a cluster option (`__nowaiting = true` sets
// config.nowaiting), every other key is a node whose value must be an
// address string or false. So what decides a node's meaning is the final
// content of that table, and a line can change another line's meaning in
// three ways, which the writer below never allows whatever it is given:
//
//   - a bare `_ENV = ...` rebinds the environment, so every later line
//     assigns somewhere else (or fails: loading stops for every node after);
//   - a key starting with "__" is an option, not a node, and applies to
//     every node of every skynet process that reads the file;
//   - a string that does not end where it should (an unescaped quote or
//     newline, or an escape Lua does not know, such as Go's \u1234) breaks
//     or swallows the lines after it.
//
// The parser accepts a subset of Lua: it rejects what it does not read
// exactly as skynet would (a long string, an expression), so a file it
// accepts means the same to a Go sender and to a skynet node. Both sides
// are checked against skynet's own Lua and loader by
// TestClusterConfigLoadsTheSameInSkynet.

// bareName says whether name can be written as a bare assignment target
// (`db = ...`) and mean the key "db" of skynet's table: a Lua name other
// than _ENV (which names the table itself). The parser accepts a bare
// target only under the same rule.
func bareName(name string) bool { return clusterconfig.IsName(name) && name != "_ENV" }

// writable splits entries into those both registry files can carry and
// those they cannot, with the reason in Entry.Reason: an empty name, a
// Ready or Down entry whose name fails clusterconfig.CheckNodeName (any
// other has no line anyway), a name that is not UTF-8, a second entry for
// a name already given, or a Ready entry whose address fails
// clusterconfig.CheckAddress. The writers below turn the latter into "not
// ready", never into a line.
func writable(entries []Entry) (ok, bad []Entry) {
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		var why string
		switch {
		case e.Node == "":
			why = "empty node name"
		case e.State == Ready || e.State == Down:
			if err := clusterconfig.CheckNodeName(e.Node); err != nil {
				why = err.Error()
			}
		}
		switch {
		case why != "":
		case !utf8.ValidString(e.Node):
			// nodes.json could not carry it: JSON would change the name.
			why = fmt.Sprintf("node name %q is not valid UTF-8", e.Node)
		case seen[e.Node]:
			why = fmt.Sprintf("node %q given twice", e.Node)
		case e.State == Ready:
			if err := clusterconfig.CheckAddress(e.Address); err != nil {
				why = fmt.Sprintf("node %q: %v", e.Node, err)
			}
		}
		if why != "" {
			e.Reason = why
			bad = append(bad, e)
			continue
		}
		seen[e.Node] = true
		ok = append(ok, e)
	}
	return ok, bad
}

// ConfigTable is the table skynet's clusterd holds after loading the file
// FormatClusterConfig writes for entries, with __nowaiting set to noWait:
// node name to "host:port" (Ready) or false (Down). skycall-agent pushes
// it, so a pushed skynet and one reading the file get the same config.
// Entries the file cannot carry are left out and returned, as by
// FormatClusterConfig.
func ConfigTable(entries []Entry, noWait bool) (table map[string]any, omitted []Entry) {
	ok, bad := writable(entries)
	table = make(map[string]any, len(ok)+1)
	table[clusterconfig.OptionPrefix+"nowaiting"] = noWait
	for _, e := range ok {
		switch e.State {
		case Ready:
			table[e.Node] = e.Address
		case Down:
			table[e.Node] = false
		}
	}
	return table, bad
}

// FormatClusterConfig writes skynet's cluster config for entries, in their
// order: `name = "host:port"` for a Ready node, `name = false` for a Down
// node, and no line for any other (skynet callers then wait, as for a node
// not declared yet). A name that is not a plain Lua identifier, or is a
// keyword or _ENV, is written as _ENV["name"]; every string is written in
// printable ASCII with decimal escapes, so no name or address can end its
// line early or reach another one. comment becomes the first line (as a Lua
// comment, reduced to printable ASCII).
//
// Entries the file cannot carry (see writable) get no line and are
// returned, so that the caller can say why a node is missing.
func FormatClusterConfig(comment string, entries []Entry) (text string, omitted []Entry) {
	ok, bad := writable(entries)
	var b strings.Builder
	b.Grow(64 + 40*len(ok))
	b.WriteString("-- ")
	for i := 0; i < len(comment); i++ {
		if c := comment[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else {
			b.WriteByte('?')
		}
	}
	b.WriteByte('\n')
	for _, e := range ok {
		var value string
		switch e.State {
		case Down:
			value = "false"
		case Ready:
			value = quoteLua(e.Address)
		default:
			continue
		}
		if bareName(e.Node) {
			b.WriteString(e.Node)
		} else {
			b.WriteString("_ENV[")
			b.WriteString(quoteLua(e.Node))
			b.WriteString("]")
		}
		b.WriteString(" = ")
		b.WriteString(value)
		b.WriteByte('\n')
	}
	return b.String(), bad
}

// quoteLua writes s as a Lua short string that any Lua 5.x reads back byte
// for byte: printable ASCII as is (but for the quote and the backslash),
// every other byte as a three-digit decimal escape. (Go's strconv.Quote is
// not Lua: its \u1234 would make skynet refuse the whole file.)
func quoteLua(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\%03d", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ClusterConfig is the content of a skynet cluster config file.
type ClusterConfig struct {
	// Nodes maps node names to Ready (with an address) or Down entries.
	Nodes map[string]Entry
	// NoWait is __nowaiting: callers of an absent node fail at once.
	NoWait bool
}

// ParseError is a syntax error in a cluster config file.
type ParseError struct {
	File string // may be empty
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// ParseClusterConfig parses skynet's cluster config, the Lua chunk that
// skynet's cluster.reload loads: one assignment a node,
//
//	-- comments run to the end of the line; --[[ long comments ]] too
//	db = "10.0.0.7:2528"        -- Ready at that address
//	cache = false               -- Down: callers fail at once
//	_ENV["db-0"] = "db-0:2528"  -- a name that is not a Lua identifier
//	__nowaiting = true          -- absent nodes fail at once
//
// Assignments may end with ';'. A name assigned nil is absent. A name
// starting with "__" is a cluster option, as skynet reads it: __nowaiting
// is on when its value is anything but false or nil (Lua's truth), and
// other options are ignored; no such name is ever a node. An address must
// pass clusterconfig.CheckAddress, as in a push to skycall's Lua service.
// Anything else (function calls, tables, long strings, expressions, a
// keyword or a bare _ENV as a target) is an error naming its line.
func ParseClusterConfig(data []byte) (*ClusterConfig, error) {
	p := &cfgParser{lex: clusterconfig.NewLexer(string(data))}
	cfg := &ClusterConfig{Nodes: make(map[string]Entry)}
	for {
		tok, err := p.next()
		if err != nil {
			return nil, err
		}
		switch {
		case tok.Kind == clusterconfig.EOF:
			return cfg, nil
		case tok.Kind == clusterconfig.Symbol && tok.Text == ";":
			continue
		}
		line := tok.Line
		name, err := p.target(tok)
		if err != nil {
			return nil, err
		}
		if tok, err = p.next(); err != nil {
			return nil, err
		}
		if tok.Kind != clusterconfig.Symbol || tok.Text != "=" {
			return nil, p.errorf(line, "expected '=' after %q", name)
		}
		val, err := p.value(name)
		if err != nil {
			return nil, err
		}
		isOption := strings.HasPrefix(name, clusterconfig.OptionPrefix)
		switch v := val.(type) {
		case nil:
			if !isOption {
				delete(cfg.Nodes, name)
			} else if name == "__nowaiting" {
				cfg.NoWait = false // the key is gone: as if never set
			}
		case bool:
			switch {
			case name == "__nowaiting":
				cfg.NoWait = v
			case isOption:
			case v:
				return nil, p.errorf(line, "node %q: want \"host:port\", false or nil, got true", name)
			default:
				cfg.Nodes[name] = Entry{Node: name, State: Down, Reason: "set to false in the cluster config"}
			}
		case string:
			switch {
			case name == "__nowaiting":
				cfg.NoWait = true // any string is true in Lua
			case isOption:
			default:
				if err := clusterconfig.CheckAddress(v); err != nil {
					return nil, p.errorf(line, "node %q: %v", name, err)
				}
				cfg.Nodes[name] = Entry{Node: name, State: Ready, Address: v}
			}
		}
	}
}

type cfgParser struct {
	lex *clusterconfig.Lexer
}

func (p *cfgParser) errorf(line int, format string, args ...any) error {
	return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *cfgParser) next() (clusterconfig.Token, error) {
	tok, err := p.lex.Next()
	var se *clusterconfig.SyntaxError
	if errors.As(err, &se) {
		return tok, &ParseError{Line: se.Line, Msg: se.Msg}
	}
	return tok, err
}

// expect reads the next token and fails unless it is the symbol s.
func (p *cfgParser) expect(s, after string) error {
	tok, err := p.next()
	if err != nil {
		return err
	}
	if tok.Kind != clusterconfig.Symbol || tok.Text != s {
		return p.errorf(tok.Line, "expected %q after %s", s, after)
	}
	return nil
}

// target reads, from tok on, `name` (under the writer's rule, bareName) or
// `_ENV["name"]`.
func (p *cfgParser) target(tok clusterconfig.Token) (string, error) {
	switch {
	case tok.Kind == clusterconfig.Keyword:
		return "", p.errorf(tok.Line, "unexpected %q (a Lua keyword): write _ENV[%q]", tok.Text, tok.Text)
	case tok.Kind != clusterconfig.Name:
		return "", p.errorf(tok.Line, "expected a node name, got %q", tok.Text)
	case tok.Text != "_ENV":
		return tok.Text, nil
	}
	open, err := p.next()
	if err != nil {
		return "", err
	}
	if open.Kind != clusterconfig.Symbol || open.Text != "[" {
		// `_ENV = ...` would rebind the table every later line assigns to.
		return "", p.errorf(tok.Line, "unexpected _ENV: only _ENV[\"name\"] = ... is allowed")
	}
	key, err := p.next()
	if err != nil {
		return "", err
	}
	if key.Kind != clusterconfig.String || key.Long {
		return "", p.errorf(key.Line, "expected a quoted name in _ENV[...]")
	}
	if err := p.expect("]", fmt.Sprintf("_ENV[%q", key.Value)); err != nil {
		return "", err
	}
	if key.Value == "" {
		return "", p.errorf(tok.Line, "empty node name")
	}
	return key.Value, nil
}

// value reads a short string, true, false or nil.
func (p *cfgParser) value(name string) (any, error) {
	tok, err := p.next()
	if err != nil {
		return nil, err
	}
	switch {
	case tok.Kind == clusterconfig.String && !tok.Long:
		return tok.Value, nil
	case tok.Kind == clusterconfig.Keyword && tok.Text == "true":
		return true, nil
	case tok.Kind == clusterconfig.Keyword && tok.Text == "false":
		return false, nil
	case tok.Kind == clusterconfig.Keyword && tok.Text == "nil":
		return nil, nil
	case tok.Kind == clusterconfig.EOF:
		return nil, p.errorf(tok.Line, "missing value for %q", name)
	}
	return nil, p.errorf(tok.Line, "node %q: want \"host:port\", false or nil, got %s", name, tok.Text)
}
