// Package lualit reads and writes Lua literals: the values a user types on
// the skycall command line ('get' 'k' 42 true {a=1, 2}) and the way replies
// are printed back. It is the constructor subset of Lua 5.5's grammar, read
// from the tokens of clusterconfig's Lexer (skynet's Lua, keywords included): nil,
// booleans, integers and floats (decimal and hex), strings in every quoting
// Lua has (short with all escapes, and long brackets), and table
// constructors. No expressions, names or calls, apart from the three
// spellings Format needs for values without a literal: math.huge,
// -math.huge and 0/0.
//
// Values are those of package luaseri, so a parsed value packs as
// skynet.pack would pack the same literal in Lua:
//
//	nil -> nil, true/false -> bool, 42 -> int64, 4.2 -> float64,
//	's' -> string, {1, 2} -> []any, {a=1} -> map[any]any,
//	{1, a=1} -> luaseri.Table, {} -> []any{}
//
// Format(Parse(s)) is canonical, and Parse(Format(v)) gives back v for every
// value Parse returns (checked by FuzzRoundTrip).
package lualit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/skycall-io/skycall/sender/clusterconfig"
	"github.com/skycall-io/skycall/sender/luaseri"
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("malformed Lua literal")

// Parse reads exactly one literal from s (surrounding space and comments
// allowed).
func Parse(s string) (any, error) {
	p, err := newParser(s)
	if err != nil {
		return nil, err
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if p.tok.Kind != clusterconfig.EOF {
		return nil, p.errorf("unexpected %s after the value", p.near())
	}
	return v, nil
}

// ParseList reads zero or more literals separated by commas, as the
// arguments of a Lua call: `'get', 'k', 42`.
func ParseList(s string) ([]any, error) {
	p, err := newParser(s)
	if err != nil {
		return nil, err
	}
	var vals []any
	for p.tok.Kind != clusterconfig.EOF {
		v, err := p.value(0)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		if p.tok.Kind == clusterconfig.EOF {
			break
		}
		if !p.isSymbol(",") {
			return nil, p.errorf("expected ',' between values, found %s", p.near())
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.Kind == clusterconfig.EOF {
			return nil, p.errorf("expected a value after ','")
		}
	}
	return vals, nil
}

// parser reads literals from clusterconfig's Lua tokens, one token ahead.
type parser struct {
	src string
	lex *clusterconfig.Lexer
	tok clusterconfig.Token // the current token, not consumed yet
}

func newParser(s string) (*parser, error) {
	p := &parser{src: s, lex: clusterconfig.NewLexer(s)}
	return p, p.advance()
}

// advance moves to the next token.
func (p *parser) advance() error {
	tok, err := p.lex.Next()
	if err != nil {
		var se *clusterconfig.SyntaxError
		if errors.As(err, &se) {
			p.tok.Pos = se.Pos
			return p.errorf("%s", se.Msg)
		}
		return err
	}
	p.tok = tok
	return nil
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d of %q: %s", ErrSyntax, p.tok.Pos+1, clip(p.src), fmt.Sprintf(format, args...))
}

// clip keeps error messages readable for long inputs.
func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// near describes the current token, for error messages.
func (p *parser) near() string {
	if p.tok.Kind == clusterconfig.EOF {
		return "end of input"
	}
	return fmt.Sprintf("%q", p.tok.Text)
}

func (p *parser) isSymbol(s string) bool {
	return p.tok.Kind == clusterconfig.Symbol && p.tok.Text == s
}

// eat consumes the symbol s if it is the current token.
func (p *parser) eat(s string) (bool, error) {
	if !p.isSymbol(s) {
		return false, nil
	}
	return true, p.advance()
}

// value reads one literal nested inside depth tables, leaving the token
// after it current. Past skynet.pack's limit it stops: such a literal could
// not be sent, and the bound keeps the recursive parser's stack small.
func (p *parser) value(depth int) (any, error) {
	if depth > luaseri.MaxDepth {
		return nil, p.errorf("tables nested deeper than %d (skynet.pack's limit)", luaseri.MaxDepth)
	}
	tok := p.tok
	switch {
	case tok.Kind == clusterconfig.EOF:
		return nil, p.errorf("expected a value, found end of input")
	case tok.Kind == clusterconfig.String:
		return tok.Value, p.advance()
	case tok.Kind == clusterconfig.Number:
		return p.number(false)
	case tok.Kind == clusterconfig.Keyword && (tok.Text == "nil" || tok.Text == "true" || tok.Text == "false"):
		return map[string]any{"nil": nil, "true": true, "false": false}[tok.Text], p.advance()
	case p.isSymbol("{"):
		return p.table(depth + 1)
	case p.isSymbol("-"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.Kind == clusterconfig.Name && p.tok.Text == "math" {
			return p.mathHuge(-1)
		}
		if p.tok.Kind != clusterconfig.Number {
			return nil, p.errorf("expected a number after '-'")
		}
		return p.number(true)
	case tok.Kind == clusterconfig.Name && strings.HasPrefix(p.src[tok.Pos:], "math.huge"):
		return p.mathHuge(1)
	}
	if tok.Kind == clusterconfig.Name || tok.Kind == clusterconfig.Keyword {
		return nil, p.errorf("%q is not a literal (quote strings: '%s')", tok.Text, tok.Text)
	}
	return nil, p.errorf("expected a value, found %s", p.near())
}

// mathHuge reads math.huge, the current token being "math".
func (p *parser) mathHuge(sign int) (any, error) {
	if !strings.HasPrefix(p.src[p.tok.Pos:], "math.huge") {
		return nil, p.errorf("%q is not a literal (quote strings: '%s')", p.tok.Text, p.tok.Text)
	}
	for range 3 { // math . huge
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	return math.Inf(sign), nil
}

// number converts the current numeral (negated when neg), or reads 0/0.
func (p *parser) number(neg bool) (any, error) {
	text := p.tok.Text
	if text == "0" && !neg && strings.HasPrefix(p.src[p.tok.Pos:], "0/0") {
		for range 3 { // 0 / 0
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		return math.NaN(), nil
	}
	v, err := numeral(text)
	if err != nil {
		return nil, p.errorf("malformed number %q", text)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if neg {
		switch n := v.(type) {
		case int64:
			return -n, nil // wraps for math.MinInt64, as in Lua
		case float64:
			return -n, nil
		}
	}
	return v, nil
}

// numeral converts a Lua numeral: an integer when it has no '.', exponent
// or (hex) 'p' and fits; a decimal integer that does not fit is a float, a
// hex one wraps around modulo 2^64, as Lua 5.4 reads them.
func numeral(s string) (any, error) {
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "0x") {
		digits := lower[2:]
		if !strings.ContainsAny(digits, ".p") {
			if digits == "" {
				return nil, errors.New("no digits")
			}
			var u uint64
			for _, c := range digits {
				d := strings.IndexRune("0123456789abcdef", c)
				if d < 0 {
					return nil, errors.New("bad hex digit")
				}
				u = u<<4 | uint64(d)
			}
			return int64(u), nil
		}
		if !strings.Contains(digits, "p") {
			lower += "p0" // Go requires the exponent of a hex float
		}
		if strings.HasPrefix(lower[2:], "p") || strings.HasPrefix(lower[2:], ".p") {
			return nil, errors.New("no digits")
		}
		return parseFloat(lower)
	}
	for _, c := range lower {
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == '+' || c == '-') {
			return nil, errors.New("bad digit")
		}
	}
	if !strings.ContainsAny(lower, ".e") {
		if n, err := strconv.ParseInt(lower, 10, 64); err == nil {
			return n, nil
		}
	}
	return parseFloat(lower)
}

func parseFloat(s string) (any, error) {
	if strings.Contains(s, "_") || strings.Contains(s, "inf") || strings.Contains(s, "nan") {
		return nil, errors.New("not a Lua numeral")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return f, nil // overflow to ±Inf or underflow to 0, as Lua's strtod
		}
		return nil, err
	}
	return f, nil
}

// table reads a table constructor; the current token is '{'.
func (p *parser) table(depth int) (any, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	var array []any
	var hash map[any]any
	set := func(k, v any) error {
		if v == nil {
			return nil // {a=nil} has no a, as in Lua
		}
		if hash == nil {
			hash = map[any]any{}
		}
		if f, ok := k.(float64); ok {
			if f != f {
				return p.errorf("table key is NaN")
			}
			if i := int64(f); float64(i) == f && f >= -(1<<63) && f < 1<<63 {
				k = i // Lua normalises integral float keys
			}
		}
		hash[k] = v
		return nil
	}
	for {
		if p.tok.Kind == clusterconfig.EOF {
			return nil, p.errorf("unfinished table (missing '}')")
		}
		if ok, err := p.eat("}"); ok || err != nil {
			if err != nil {
				return nil, err
			}
			break
		}
		switch {
		case p.isSymbol("["):
			if err := p.advance(); err != nil {
				return nil, err
			}
			k, err := p.value(depth)
			if err != nil {
				return nil, err
			}
			switch k.(type) {
			case nil:
				return nil, p.errorf("table key is nil")
			case []any, map[any]any, luaseri.Table:
				return nil, p.errorf("table keys that are tables cannot be sent")
			}
			if ok, err := p.eat("]"); !ok || err != nil {
				return nil, orErr(err, p.errorf("expected ']' after a table key, found %s", p.near()))
			}
			if ok, err := p.eat("="); !ok || err != nil {
				return nil, orErr(err, p.errorf("expected '=' after [key], found %s", p.near()))
			}
			v, err := p.value(depth)
			if err != nil {
				return nil, err
			}
			if err := set(k, v); err != nil {
				return nil, err
			}
		case p.tok.Kind == clusterconfig.Name && p.nameKey():
			k := p.tok.Text
			for range 2 { // name =
				if err := p.advance(); err != nil {
					return nil, err
				}
			}
			v, err := p.value(depth)
			if err != nil {
				return nil, err
			}
			if err := set(k, v); err != nil {
				return nil, err
			}
		default:
			v, err := p.value(depth)
			if err != nil {
				return nil, err
			}
			// A nil in the array part ends the sequence for skynet.pack
			// (lua_rawlen); keep it as a hole only if more follow, which
			// cannot be represented, so refuse it.
			if v == nil {
				return nil, p.errorf("nil inside a table's list part cannot be sent (use [i]=... keys)")
			}
			array = append(array, v)
		}
		if p.isSymbol(",") || p.isSymbol(";") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			continue
		}
		if p.tok.Kind == clusterconfig.EOF {
			return nil, p.errorf("unfinished table (missing '}')")
		}
		if p.isSymbol("}") {
			continue
		}
		return nil, p.errorf("expected ',' or '}' in a table, found %s", p.near())
	}
	// Positional items win over [i]= keys they overlap, as in Lua, where
	// the list part is stored last.
	for k := range hash {
		if i, ok := k.(int64); ok && i >= 1 && i <= int64(len(array)) {
			delete(hash, k)
		}
	}
	if len(hash) == 0 {
		hash = nil
	}
	switch {
	case hash == nil && array == nil:
		return []any{}, nil
	case hash == nil:
		return array, nil
	case array == nil:
		return hash, nil
	}
	return luaseri.Table{Array: array, Hash: hash}, nil
}

func orErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// nameKey tells `name = v` from a value starting with a name (math.huge):
// it looks at the token after the current one.
func (p *parser) nameKey() bool {
	next, err := p.lex.Peek()
	return err == nil && next.Kind == clusterconfig.Symbol && next.Text == "="
}
