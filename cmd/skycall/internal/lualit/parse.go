// Package lualit reads and writes Lua literals: the values a user types on
// the skycall command line ('get' 'k' 42 true {a=1, 2}) and the way replies
// are printed back. It is the constructor subset of Lua 5.4's grammar: nil,
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
	"unicode/utf8"

	"github.com/skycall-io/skycall/sender/luaseri"
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("malformed Lua literal")

// Parse reads exactly one literal from s (surrounding space and comments
// allowed).
func Parse(s string) (any, error) {
	p := &parser{src: s}
	p.skip()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skip()
	if p.pos < len(p.src) {
		return nil, p.errorf("unexpected %s after the value", p.near())
	}
	return v, nil
}

// ParseList reads zero or more literals separated by commas, as the
// arguments of a Lua call: `'get', 'k', 42`.
func ParseList(s string) ([]any, error) {
	p := &parser{src: s}
	var vals []any
	p.skip()
	for p.pos < len(p.src) {
		v, err := p.value(0)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		p.skip()
		if p.pos == len(p.src) {
			break
		}
		if p.src[p.pos] != ',' {
			return nil, p.errorf("expected ',' between values, found %s", p.near())
		}
		p.pos++
		p.skip()
		if p.pos == len(p.src) {
			return nil, p.errorf("expected a value after ','")
		}
	}
	return vals, nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d of %q: %s", ErrSyntax, p.pos+1, clip(p.src), fmt.Sprintf(format, args...))
}

// clip keeps error messages readable for long inputs.
func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// near describes what is at the current position, for error messages.
func (p *parser) near() string {
	if p.pos >= len(p.src) {
		return "end of input"
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return fmt.Sprintf("%q", r)
}

// skip passes white space and comments (-- line, --[[ long ]]).
func (p *parser) skip() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case strings.HasPrefix(p.src[p.pos:], "--"):
			p.pos += 2
			if level, ok := p.longOpen(); ok {
				if _, err := p.longBody(level); err != nil {
					p.pos = len(p.src) // an unclosed comment runs to the end
				}
				continue
			}
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

// value reads a literal nested inside depth tables. Past skynet.pack's
// limit it stops: such a literal could not be sent, and the bound keeps the
// recursive parser's stack small.
func (p *parser) value(depth int) (any, error) {
	if depth > luaseri.MaxDepth {
		return nil, p.errorf("tables nested deeper than %d (skynet.pack's limit)", luaseri.MaxDepth)
	}
	if p.pos >= len(p.src) {
		return nil, p.errorf("expected a value, found end of input")
	}
	rest := p.src[p.pos:]
	switch c := rest[0]; {
	case c == '"' || c == '\'':
		return p.shortString(c)
	case c == '[':
		level, ok := p.longOpen()
		if !ok {
			return nil, p.errorf("expected a value, found '['")
		}
		return p.longBody(level)
	case c == '{':
		return p.table(depth + 1)
	case c == '-' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	case isIdentStart(c):
		word := p.ident()
		switch word {
		case "nil":
			return nil, nil
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "math":
			if strings.HasPrefix(p.src[p.pos:], ".huge") {
				p.pos += len(".huge")
				return math.Inf(1), nil
			}
		}
		p.pos -= len(word)
		return nil, p.errorf("%q is not a literal (quote strings: '%s')", word, word)
	}
	return nil, p.errorf("expected a value, found %s", p.near())
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && isIdent(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// number reads an optionally negated numeral, or -math.huge, or 0/0.
func (p *parser) number() (any, error) {
	start := p.pos
	neg := false
	if p.src[p.pos] == '-' {
		neg = true
		p.pos++
		p.skip()
		if strings.HasPrefix(p.src[p.pos:], "math.huge") {
			p.pos += len("math.huge")
			return math.Inf(-1), nil
		}
	}
	numStart := p.pos
	// A numeral is a maximal run of alphanumerics, '.', and a sign right
	// after an exponent letter, as Lua's lexer reads it.
	hex := strings.HasPrefix(p.src[p.pos:], "0x") || strings.HasPrefix(p.src[p.pos:], "0X")
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if isIdent(c) || c == '.' {
			p.pos++
			continue
		}
		if (c == '+' || c == '-') && p.pos > numStart {
			prev := p.src[p.pos-1] | 0x20
			if (!hex && prev == 'e') || (hex && prev == 'p') {
				p.pos++
				continue
			}
		}
		break
	}
	text := p.src[numStart:p.pos]
	if text == "" {
		p.pos = start
		return nil, p.errorf("expected a number after '-'")
	}
	if text == "0" && !neg && strings.HasPrefix(p.src[p.pos:], "/0") {
		p.pos += 2
		return math.NaN(), nil
	}
	v, err := numeral(text)
	if err != nil {
		p.pos = numStart
		return nil, p.errorf("malformed number %q", text)
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

func (p *parser) shortString(quote byte) (string, error) {
	start := p.pos
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			p.pos = start
			return "", p.errorf("unfinished string")
		}
		c := p.src[p.pos]
		switch {
		case c == quote:
			p.pos++
			return b.String(), nil
		case c == '\n' || c == '\r':
			return "", p.errorf("unfinished string (a newline inside quotes needs \\n)")
		case c == '\\':
			if err := p.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

// escape reads one backslash escape, as Lua 5.4's lexer does.
func (p *parser) escape(b *strings.Builder) error {
	p.pos++ // the backslash
	if p.pos >= len(p.src) {
		return p.errorf("unfinished escape")
	}
	c := p.src[p.pos]
	if r, ok := simpleEscapes[c]; ok {
		b.WriteByte(r)
		p.pos++
		return nil
	}
	switch {
	case c == '\n' || c == '\r':
		b.WriteByte('\n')
		p.pos++
		if p.pos < len(p.src) && (p.src[p.pos] == '\n' || p.src[p.pos] == '\r') && p.src[p.pos] != c {
			p.pos++
		}
	case c == 'x':
		if p.pos+3 > len(p.src) {
			return p.errorf("\\x needs two hex digits")
		}
		v, err := strconv.ParseUint(p.src[p.pos+1:p.pos+3], 16, 8)
		if err != nil {
			return p.errorf("\\x needs two hex digits")
		}
		b.WriteByte(byte(v))
		p.pos += 3
	case c == 'z':
		p.pos++
		for p.pos < len(p.src) && strings.IndexByte(" \t\n\r\f\v", p.src[p.pos]) >= 0 {
			p.pos++
		}
	case c == 'u':
		end := strings.IndexByte(p.src[p.pos:], '}')
		if !strings.HasPrefix(p.src[p.pos:], "u{") || end < 3 {
			return p.errorf("\\u needs {hex digits}")
		}
		v, err := strconv.ParseUint(p.src[p.pos+2:p.pos+end], 16, 32)
		if err != nil || v >= 1<<31 {
			return p.errorf("\\u{...} must be hex below 2^31")
		}
		b.WriteString(utf8Lua(uint32(v)))
		p.pos += end + 1
	case c >= '0' && c <= '9':
		n, i := 0, 0
		for i < 3 && p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			n = n*10 + int(p.src[p.pos]-'0')
			p.pos++
			i++
		}
		if n > 255 {
			return p.errorf("decimal escape too large")
		}
		b.WriteByte(byte(n))
	default:
		return p.errorf("invalid escape \\%c", c)
	}
	return nil
}

var simpleEscapes = map[byte]byte{
	'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v',
	'\\': '\\', '"': '"', '\'': '\'',
}

// utf8Lua encodes v as Lua's \u{} does: UTF-8 extended to 31 bits, so that
// surrogates and values above U+10FFFF are encoded too.
func utf8Lua(v uint32) string {
	if v < 0x80 {
		return string(rune(v))
	}
	var buf [6]byte
	n := 0
	limit := uint32(0x3f) // the largest value that fits in the first byte
	for v > limit {
		buf[5-n] = byte(0x80 | (v & 0x3f))
		n++
		v >>= 6
		limit >>= 1
	}
	buf[5-n] = byte((^limit << 1) | v)
	return string(buf[5-n:])
}

// longOpen reads "[[" or "[==[" at the position; it leaves the position
// unchanged when there is none.
func (p *parser) longOpen() (int, bool) {
	if p.pos >= len(p.src) || p.src[p.pos] != '[' {
		return 0, false
	}
	i := p.pos + 1
	for i < len(p.src) && p.src[i] == '=' {
		i++
	}
	if i >= len(p.src) || p.src[i] != '[' {
		return 0, false
	}
	level := i - p.pos - 1
	p.pos = i + 1
	return level, true
}

// longBody reads up to the matching close bracket; a first newline is
// dropped, as in Lua.
func (p *parser) longBody(level int) (string, error) {
	start := p.pos
	if strings.HasPrefix(p.src[p.pos:], "\r\n") || strings.HasPrefix(p.src[p.pos:], "\n\r") {
		p.pos += 2
	} else if p.pos < len(p.src) && (p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
	closer := "]" + strings.Repeat("=", level) + "]"
	end := strings.Index(p.src[p.pos:], closer)
	if end < 0 {
		p.pos = start
		return "", p.errorf("unfinished long string (no %s)", closer)
	}
	s := p.src[p.pos : p.pos+end]
	p.pos += end + len(closer)
	return s, nil
}

// table reads a table constructor; the position is at '{'.
func (p *parser) table(depth int) (any, error) {
	p.pos++
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
		p.skip()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unfinished table (missing '}')")
		}
		if p.src[p.pos] == '}' {
			p.pos++
			break
		}
		switch {
		case p.src[p.pos] == '[' && !p.atLongString():
			p.pos++
			p.skip()
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
			p.skip()
			if !p.eat(']') {
				return nil, p.errorf("expected ']' after a table key, found %s", p.near())
			}
			p.skip()
			if !p.eat('=') {
				return nil, p.errorf("expected '=' after [key], found %s", p.near())
			}
			p.skip()
			v, err := p.value(depth)
			if err != nil {
				return nil, err
			}
			if err := set(k, v); err != nil {
				return nil, err
			}
		case isIdentStart(p.src[p.pos]) && p.isNameKey():
			k := p.ident()
			p.skip()
			p.pos++ // '='
			p.skip()
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
		p.skip()
		if p.eat(',') || p.eat(';') {
			continue
		}
		if p.pos >= len(p.src) {
			return nil, p.errorf("unfinished table (missing '}')")
		}
		if p.src[p.pos] == '}' {
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

// atLongString tells "[[" or "[=[" (a long string value) from "[" (a key).
func (p *parser) atLongString() bool {
	save := p.pos
	_, ok := p.longOpen()
	p.pos = save
	return ok
}

// isNameKey tells `name = v` from a value starting with a word (true, nil).
func (p *parser) isNameKey() bool {
	save := p.pos
	defer func() { p.pos = save }()
	if reserved[p.ident()] {
		return false
	}
	p.skip()
	return p.pos < len(p.src) && p.src[p.pos] == '=' && !strings.HasPrefix(p.src[p.pos:], "==")
}

// reserved are Lua's keywords: not usable as bare table keys.
var reserved = map[string]bool{
	"and": true, "break": true, "do": true, "else": true, "elseif": true, "end": true,
	"false": true, "for": true, "function": true, "goto": true, "if": true, "in": true,
	"local": true, "nil": true, "not": true, "or": true, "repeat": true, "return": true,
	"then": true, "true": true, "until": true, "while": true,
}

func (p *parser) eat(c byte) bool {
	if p.pos < len(p.src) && p.src[p.pos] == c {
		p.pos++
		return true
	}
	return false
}
