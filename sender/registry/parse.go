package registry

import (
	"fmt"
	"strconv"
	"strings"
)

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
//	-- comments run to the end of the line
//	db = "10.0.0.7:2528"        -- Ready at that address
//	cache = false               -- Down: callers fail at once
//	_ENV["db-0"] = "db-0:2528"  -- a name that is not a Lua identifier
//	__nowaiting = true          -- absent nodes fail at once
//
// Assignments may end with ';'. A name assigned nil is absent. Anything else
// (function calls, tables, expressions) is an error naming its line.
func ParseClusterConfig(data []byte) (*ClusterConfig, error) {
	p := &cfgParser{src: string(data), line: 1}
	cfg := &ClusterConfig{Nodes: make(map[string]Entry)}
	for {
		p.skipSpace()
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
		p.skipSpace()
		if p.eof() || p.peek() != '=' {
			return nil, p.errorf(line, "expected '=' after %q", name)
		}
		p.pos++
		p.skipSpace()
		val, err := p.value(name)
		if err != nil {
			return nil, err
		}
		if name == "__nowaiting" {
			b, ok := val.(bool)
			if !ok {
				return nil, p.errorf(line, "__nowaiting must be true or false")
			}
			cfg.NoWait = b
			continue
		}
		switch v := val.(type) {
		case nil:
			delete(cfg.Nodes, name)
		case bool:
			if v {
				return nil, p.errorf(line, "node %q: want \"host:port\", false or nil, got true", name)
			}
			cfg.Nodes[name] = Entry{Node: name, State: Down, Reason: "set to false in the cluster config"}
		case string:
			if err := checkHostPort(v); err != nil {
				return nil, p.errorf(line, "node %q: %v", name, err)
			}
			cfg.Nodes[name] = Entry{Node: name, State: Ready, Address: v}
		}
		// Require a separator (space, newline or ';') before the next statement.
		if !p.eof() {
			c := p.peek()
			if c != ';' && c != ' ' && c != '\t' && c != '\r' && c != '\n' && !strings.HasPrefix(p.src[p.pos:], "--") {
				return nil, p.errorf(p.line, "unexpected %q after the value of %q", c, name)
			}
		}
	}
}

func checkHostPort(s string) error {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return fmt.Errorf("address %q is not host:port", s)
	}
	port, err := strconv.Atoi(s[i+1:])
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("address %q has an invalid port", s)
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

// skipSpace skips white space and comments.
func (p *cfgParser) skipSpace() {
	for !p.eof() {
		c := p.peek()
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case strings.HasPrefix(p.src[p.pos:], "--"):
			if end := strings.IndexByte(p.src[p.pos:], '\n'); end >= 0 {
				p.pos += end
			} else {
				p.pos = len(p.src)
			}
		default:
			return
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// target reads `name` or `_ENV["name"]`.
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
	if name != "_ENV" || p.eof() || p.peek() != '[' {
		if name == "_ENV" || name == "nil" || name == "true" || name == "false" || name == "local" || name == "return" {
			return "", p.errorf(line, "unexpected %q", name)
		}
		return name, nil
	}
	p.pos++ // [
	p.skipSpace()
	if p.eof() || (p.peek() != '"' && p.peek() != '\'') {
		return "", p.errorf(line, "expected a quoted name in _ENV[...]")
	}
	s, err := p.str()
	if err != nil {
		return "", err
	}
	p.skipSpace()
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

// str reads a Lua short string with its common escapes.
func (p *cfgParser) str() (string, error) {
	line := p.line
	q := p.peek()
	p.pos++
	var b strings.Builder
	for {
		if p.eof() || p.peek() == '\n' {
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
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\', '"', '\'':
			b.WriteByte(e)
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
