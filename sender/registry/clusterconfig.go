package registry

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
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

// luaKeywords are Lua's reserved words: never a bare assignment target.
// skynet ships Lua 5.5, whose "global" is a keyword too (skynet builds it
// with LUA_COMPAT_GLOBAL, which still lets `global = ...` through, but the
// writer does not count on a build flag).
var luaKeywords = map[string]bool{
	"and": true, "break": true, "do": true, "else": true, "elseif": true, "end": true,
	"false": true, "for": true, "function": true, "global": true, "goto": true, "if": true, "in": true,
	"local": true, "nil": true, "not": true, "or": true, "repeat": true, "return": true,
	"then": true, "true": true, "until": true, "while": true,
}

// LuaKeywords lists Lua's reserved words, sorted; the CRD's CEL rule on
// node names lists the same words (a test checks that they agree).
func LuaKeywords() []string {
	out := make([]string, 0, len(luaKeywords))
	for k := range luaKeywords {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var luaIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// bareName says whether name can be written as a bare assignment target
// (`db = ...`) and mean the key "db" of skynet's table: a Lua identifier
// that is neither a keyword nor _ENV (which names the table itself). The
// parser accepts a bare target only under the same rule.
func bareName(name string) bool {
	return luaIdentifier.MatchString(name) && !luaKeywords[name] && name != "_ENV"
}

// OptionPrefix starts the keys skynet reads as cluster options, not nodes.
const OptionPrefix = "__"

// ReservedNodeName says why name cannot name a node, or "" when it can.
// Reserved are the names a person reading or writing skynet's cluster
// config would take for something else: Lua keywords, _ENV (the config
// table itself), _G (the global table in any other Lua chunk) and names
// starting with "__" (skynet's cluster options). The CRD rejects them in
// spec.nodeName and metadata.name; a ClusterNode stored before that rule
// existed is never used by a sender (see EntryOf).
func ReservedNodeName(name string) string {
	switch {
	case name == "":
		return "the node name is empty"
	case strings.HasPrefix(name, OptionPrefix):
		return fmt.Sprintf("node name %q starts with %q, which skynet reads as a cluster option", name, OptionPrefix)
	case luaKeywords[name]:
		return fmt.Sprintf("node name %q is a Lua keyword", name)
	case name == "_ENV" || name == "_G":
		return fmt.Sprintf("node name %q is reserved by Lua", name)
	}
	return ""
}

// CheckAddress reports whether addr is an address skycall hands to skynet:
// host:port with host an IPv4 address, a DNS name or a bracketed IPv6
// address, and port 1 to 65535. It is the CRD's rule on spec.address,
// checked again wherever an address reaches a skynet process, for objects
// stored before the rule existed and for status written by anyone else.
func CheckAddress(addr string) error {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return fmt.Errorf("address %q is not host:port", addr)
	}
	host, portText := addr[:i], addr[i+1:]
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 || portText[0] == '+' || portText[0] == '-' || len(portText) > 5 {
		return fmt.Errorf("address %q has an invalid port (want 1 to 65535)", addr)
	}
	if strings.HasPrefix(host, "[") {
		ip, err := netip.ParseAddr(strings.TrimSuffix(host[1:], "]"))
		if !strings.HasSuffix(host, "]") || err != nil || !ip.Is6() || ip.Zone() != "" {
			return fmt.Errorf("address %q has an invalid IPv6 address", addr)
		}
		return nil
	}
	if ipv4Like.MatchString(host) {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is4() {
			return fmt.Errorf("address %q has an invalid IPv4 address", addr)
		}
		return nil
	}
	if len(host) > 253 || !dnsName.MatchString(host) {
		return fmt.Errorf("address %q: host must be an IPv4 address, a DNS name or [IPv6]", addr)
	}
	return nil
}

var (
	ipv4Like = regexp.MustCompile(`^[0-9]+(\.[0-9]+){3}$`)
	dnsName  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
)

// writable splits entries into those both registry files can carry and
// those they cannot, with the reason in Entry.Reason: an empty name, a
// Ready or Down entry whose name skynet would read as an option (any other
// has no line anyway), a name that is not UTF-8, a second entry for a name already given,
// or a Ready entry whose address fails CheckAddress. The writers below turn
// the latter into "not ready", never into a line.
func writable(entries []Entry) (ok, bad []Entry) {
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		var why string
		switch {
		case e.Node == "":
			why = "empty node name"
		case strings.HasPrefix(e.Node, OptionPrefix) && (e.State == Ready || e.State == Down):
			why = ReservedNodeName(e.Node)
		case !utf8.ValidString(e.Node):
			// nodes.json could not carry it: JSON would change the name.
			why = fmt.Sprintf("node name %q is not valid UTF-8", e.Node)
		case seen[e.Node]:
			why = fmt.Sprintf("node %q given twice", e.Node)
		case e.State == Ready:
			if err := CheckAddress(e.Address); err != nil {
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
// other options are ignored; no such name is ever a node. Anything else
// (function calls, tables, long strings, expressions, a keyword or a bare
// _ENV as a target) is an error naming its line.
func ParseClusterConfig(data []byte) (*ClusterConfig, error) {
	p := &cfgParser{src: string(data), line: 1}
	cfg := &ClusterConfig{Nodes: make(map[string]Entry)}
	for {
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.eof() {
			return cfg, nil
		}
		if p.peek() == ';' {
			p.pos++
			continue
		}
		line := p.line
		name, err := p.target()
		if err != nil {
			return nil, err
		}
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.eof() || p.peek() != '=' || strings.HasPrefix(p.src[p.pos:], "==") {
			return nil, p.errorf(line, "expected '=' after %q", name)
		}
		p.pos++
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		val, err := p.value(name)
		if err != nil {
			return nil, err
		}
		switch v := val.(type) {
		case nil:
			if !strings.HasPrefix(name, OptionPrefix) {
				delete(cfg.Nodes, name)
			} else if name == "__nowaiting" {
				cfg.NoWait = false // the key is gone: as if never set
			}
		case bool:
			switch {
			case name == "__nowaiting":
				cfg.NoWait = v
			case strings.HasPrefix(name, OptionPrefix):
			case v:
				return nil, p.errorf(line, "node %q: want \"host:port\", false or nil, got true", name)
			default:
				cfg.Nodes[name] = Entry{Node: name, State: Down, Reason: "set to false in the cluster config"}
			}
		case string:
			switch {
			case name == "__nowaiting":
				cfg.NoWait = true // any string is true in Lua
			case strings.HasPrefix(name, OptionPrefix):
			default:
				if err := checkHostPort(v); err != nil {
					return nil, p.errorf(line, "node %q: %v", name, err)
				}
				cfg.Nodes[name] = Entry{Node: name, State: Ready, Address: v}
			}
		}
		// Require a separator (space, newline or ';') before the next statement.
		if !p.eof() {
			c := p.peek()
			if c != ';' && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v' && !strings.HasPrefix(p.src[p.pos:], "--") {
				return nil, p.errorf(p.line, "unexpected %q after the value of %q", c, name)
			}
		}
	}
}

// checkHostPort is the parser's rule for an address: what skynet's
// clustersender can dial (host:port, port 1 to 65535), more lenient than
// CheckAddress because people write these files by hand (a Docker host
// name with '_'). No control character or space: skynet would not dial it.
func checkHostPort(s string) error {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return fmt.Errorf("address %q is not host:port", s)
	}
	port, err := strconv.Atoi(s[i+1:])
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("address %q has an invalid port", s)
	}
	for j := 0; j < i; j++ {
		if c := s[j]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("address %q: the host has a space or control character", s)
		}
	}
	return nil
}

type cfgParser struct {
	src  string
	pos  int
	line int
}

func (p *cfgParser) eof() bool  { return p.pos >= len(p.src) }
func (p *cfgParser) peek() byte { return p.src[p.pos] }

func (p *cfgParser) errorf(line int, format string, args ...any) error {
	return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// skipSpace skips white space and comments, short (to the end of the line)
// and long (--[[ ... ]] or --[==[ ... ]==], as Lua has them).
func (p *cfgParser) skipSpace() error {
	for !p.eof() {
		c := p.peek()
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case strings.HasPrefix(p.src[p.pos:], "--"):
			p.pos += 2
			if level := p.longBracket(); level >= 0 {
				if err := p.skipLong(level); err != nil {
					return err
				}
				continue
			}
			if end := strings.IndexByte(p.src[p.pos:], '\n'); end >= 0 {
				p.pos += end
			} else {
				p.pos = len(p.src)
			}
		default:
			return nil
		}
	}
	return nil
}

// longBracket, at '[', reads an opening long bracket ([[, [=[, ...) and
// returns its level, or -1 (reading nothing) when there is none.
func (p *cfgParser) longBracket() int {
	if p.eof() || p.peek() != '[' {
		return -1
	}
	i := p.pos + 1
	for i < len(p.src) && p.src[i] == '=' {
		i++
	}
	if i >= len(p.src) || p.src[i] != '[' {
		return -1
	}
	level := i - p.pos - 1
	p.pos = i + 1
	return level
}

// skipLong skips past the closing long bracket of the given level.
func (p *cfgParser) skipLong(level int) error {
	line := p.line
	closing := "]" + strings.Repeat("=", level) + "]"
	end := strings.Index(p.src[p.pos:], closing)
	if end < 0 {
		return p.errorf(line, "unfinished long comment")
	}
	p.line += strings.Count(p.src[p.pos:p.pos+end], "\n")
	p.pos += end + len(closing)
	return nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// target reads `name` (under the writer's rule, bareName) or `_ENV["name"]`.
func (p *cfgParser) target() (string, error) {
	line := p.line
	if !isIdentStart(p.peek()) {
		return "", p.errorf(line, "expected a node name, got %q", p.peek())
	}
	start := p.pos
	for !p.eof() && isIdent(p.peek()) {
		p.pos++
	}
	name := p.src[start:p.pos]
	if name != "_ENV" {
		if !bareName(name) {
			return "", p.errorf(line, "unexpected %q (a Lua keyword): write _ENV[%q]", name, name)
		}
		return name, nil
	}
	if err := p.skipSpace(); err != nil {
		return "", err
	}
	if p.eof() || p.peek() != '[' {
		// `_ENV = ...` would rebind the table every later line assigns to.
		return "", p.errorf(line, "unexpected _ENV: only _ENV[\"name\"] = ... is allowed")
	}
	p.pos++ // [
	if err := p.skipSpace(); err != nil {
		return "", err
	}
	if p.eof() || (p.peek() != '"' && p.peek() != '\'') {
		return "", p.errorf(line, "expected a quoted name in _ENV[...]")
	}
	s, err := p.str()
	if err != nil {
		return "", err
	}
	if err := p.skipSpace(); err != nil {
		return "", err
	}
	if p.eof() || p.peek() != ']' {
		return "", p.errorf(line, "expected ']' after _ENV[%q", s)
	}
	p.pos++
	if s == "" {
		return "", p.errorf(line, "empty node name")
	}
	return s, nil
}

// value reads a string, true, false or nil.
func (p *cfgParser) value(name string) (any, error) {
	line := p.line
	if p.eof() {
		return nil, p.errorf(line, "missing value for %q", name)
	}
	switch c := p.peek(); {
	case c == '"' || c == '\'':
		return p.str()
	case isIdentStart(c):
		start := p.pos
		for !p.eof() && isIdent(p.peek()) {
			p.pos++
		}
		switch w := p.src[start:p.pos]; w {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "nil":
			return nil, nil
		default:
			return nil, p.errorf(line, "node %q: want \"host:port\", false or nil, got %s", name, w)
		}
	default:
		return nil, p.errorf(line, "node %q: want \"host:port\", false or nil", name)
	}
}

// str reads a Lua short string with every escape Lua 5.4 has.
func (p *cfgParser) str() (string, error) {
	line := p.line
	q := p.peek()
	p.pos++
	var b strings.Builder
	for {
		if p.eof() || p.peek() == '\n' || p.peek() == '\r' {
			return "", p.errorf(line, "unfinished string")
		}
		c := p.peek()
		p.pos++
		if c == q {
			return b.String(), nil
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if p.eof() {
			return "", p.errorf(line, "unfinished string")
		}
		e := p.peek()
		p.pos++
		switch e {
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '\\', '"', '\'':
			b.WriteByte(e)
		case '\n', '\r':
			// A backslash before a line break is a line break (\r\n and
			// \n\r count as one, as in Lua).
			p.line++
			if !p.eof() && (p.peek() == '\n' || p.peek() == '\r') && p.peek() != e {
				p.pos++
			}
			b.WriteByte('\n')
		case 'z':
			// Skips the white space that follows, line breaks included.
			for !p.eof() {
				c := p.peek()
				if c == '\n' {
					p.line++
				} else if c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v' {
					break
				}
				p.pos++
			}
		case 'x':
			if p.pos+2 > len(p.src) {
				return "", p.errorf(line, "bad \\x escape")
			}
			v, err := strconv.ParseUint(p.src[p.pos:p.pos+2], 16, 8)
			if err != nil {
				return "", p.errorf(line, "bad \\x escape")
			}
			b.WriteByte(byte(v))
			p.pos += 2
		case 'u':
			// \u{XXX}: the UTF-8 encoding of XXX (at most 2^31), as Lua 5.4.
			end := strings.IndexByte(p.src[p.pos:], '}')
			if p.eof() || p.peek() != '{' || end < 2 {
				return "", p.errorf(line, "bad \\u escape")
			}
			v, err := strconv.ParseUint(p.src[p.pos+1:p.pos+end], 16, 32)
			if err != nil || v >= 1<<31 {
				return "", p.errorf(line, "bad \\u escape")
			}
			b.WriteString(luaUTF8(uint32(v)))
			p.pos += end + 1
		default:
			if e >= '0' && e <= '9' {
				start := p.pos - 1
				for p.pos < len(p.src) && p.pos-start < 3 && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
					p.pos++
				}
				v, err := strconv.Atoi(p.src[start:p.pos])
				if err != nil || v > 255 {
					return "", p.errorf(line, "bad decimal escape")
				}
				b.WriteByte(byte(v))
				continue
			}
			return "", p.errorf(line, "unknown escape \\%c", e)
		}
	}
}

// luaUTF8 encodes x as Lua 5.4's \u{...} does: UTF-8 extended to 31 bits,
// surrogates included (Go's utf8 package would replace those).
func luaUTF8(x uint32) string {
	if x < 0x80 {
		return string([]byte{byte(x)})
	}
	var buf [8]byte
	n := 0
	mfb := uint32(0x3f) // the largest value that fits in the first byte
	for {
		buf[7-n] = byte(0x80 | (x & 0x3f))
		n++
		x >>= 6
		mfb >>= 1
		if x <= mfb {
			break
		}
	}
	buf[7-n] = byte((^mfb << 1) | x)
	n++
	return string(buf[8-n:])
}
