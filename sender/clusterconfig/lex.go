package clusterconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the kind of a Token.
type Kind int

// Token kinds.
const (
	EOF     Kind = iota
	Name         // an identifier that is not a keyword
	Keyword      // one of Keywords
	String       // a short or long string; Token.Value holds its bytes
	Number       // a numeral, as written; converting it is the caller's
	Symbol       // an operator or punctuation: = == [ ] { } , ; - . .. and the rest
)

// Token is one token of Lua source.
type Token struct {
	Kind  Kind
	Text  string // the source text, but for String (see Value)
	Value string // a String's bytes, escapes decoded
	Long  bool   // a String written in long brackets
	Pos   int    // byte offset of the first byte
	Line  int    // line of the first byte, from 1
}

// SyntaxError is a lexical error in Lua source.
type SyntaxError struct {
	Pos  int // byte offset where the bad token starts
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Lexer reads Lua 5.5 tokens, as skynet's Lua reads them: comments and
// white space skipped, short strings with every escape, long brackets,
// numerals as written.
type Lexer struct {
	src  string
	pos  int
	line int
}

// NewLexer returns a Lexer reading src from its start.
func NewLexer(src string) *Lexer { return &Lexer{src: src, line: 1} }

// Peek returns the token Next would return, without reading it.
func (l *Lexer) Peek() (Token, error) {
	save := *l
	defer func() { *l = save }()
	return l.Next()
}

// Next returns the next token; at the end of the source, an EOF token.
func (l *Lexer) Next() (Token, error) {
	if err := l.skipSpace(); err != nil {
		return Token{}, err
	}
	t := Token{Pos: l.pos, Line: l.line}
	if l.pos >= len(l.src) {
		return t, nil
	}
	rest := l.src[l.pos:]
	switch c := rest[0]; {
	case c == '"' || c == '\'':
		v, err := l.shortString(c)
		t.Kind, t.Value, t.Text = String, v, l.src[t.Pos:l.pos]
		return t, err
	case c == '[':
		if level, ok := l.longOpen(); ok {
			v, err := l.longBody(level, "string")
			t.Kind, t.Value, t.Long, t.Text = String, v, true, l.src[t.Pos:l.pos]
			return t, err
		}
	case isIdentStart(c):
		for l.pos < len(l.src) && isIdent(l.src[l.pos]) {
			l.pos++
		}
		t.Text = l.src[t.Pos:l.pos]
		t.Kind = Name
		if keywords[t.Text] {
			t.Kind = Keyword
		}
		return t, nil
	case isDigit(c) || (c == '.' && len(rest) > 1 && isDigit(rest[1])):
		l.numeral()
		t.Kind, t.Text = Number, l.src[t.Pos:l.pos]
		return t, nil
	}
	for _, s := range symbols {
		if strings.HasPrefix(rest, s) {
			l.pos += len(s)
			t.Kind, t.Text = Symbol, s
			return t, nil
		}
	}
	return t, l.errorf(t.Pos, t.Line, "unexpected character %q", rest[0])
}

// symbols are Lua's operators and punctuation, longest first.
var symbols = []string{"...", "..", "==", "~=", "<=", ">=", "//", "::", "<<", ">>",
	"+", "-", "*", "/", "%", "^", "#", "&", "~", "|", "<", ">", "=", "(", ")", "{", "}", "[", "]", ";", ":", ",", "."}

func (l *Lexer) errorf(pos, line int, format string, args ...any) error {
	return &SyntaxError{Pos: pos, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// newline, at '\n' or '\r', passes one line break: \n, \r, \r\n or \n\r.
func (l *Lexer) newline() {
	c := l.src[l.pos]
	l.pos++
	if l.pos < len(l.src) && (l.src[l.pos] == '\n' || l.src[l.pos] == '\r') && l.src[l.pos] != c {
		l.pos++
	}
	l.line++
}

// skipSpace skips white space and comments, short and long.
func (l *Lexer) skipSpace() error {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\n' || c == '\r':
			l.newline()
		case isSpace(c):
			l.pos++
		case strings.HasPrefix(l.src[l.pos:], "--"):
			start, line := l.pos, l.line
			l.pos += 2
			if level, ok := l.longOpen(); ok {
				if _, err := l.longBody(level, "comment"); err != nil {
					return l.errorf(start, line, "unfinished long comment")
				}
				continue
			}
			for l.pos < len(l.src) && l.src[l.pos] != '\n' && l.src[l.pos] != '\r' {
				l.pos++
			}
		default:
			return nil
		}
	}
	return nil
}

// longOpen reads an opening long bracket ([[, [=[, ...) and returns its
// level; it reads nothing when there is none.
func (l *Lexer) longOpen() (int, bool) {
	if l.pos >= len(l.src) || l.src[l.pos] != '[' {
		return 0, false
	}
	i := l.pos + 1
	for i < len(l.src) && l.src[i] == '=' {
		i++
	}
	if i >= len(l.src) || l.src[i] != '[' {
		return 0, false
	}
	level := i - l.pos - 1
	l.pos = i + 1
	return level, true
}

// longBody reads up to the closing bracket of level. As in Lua, a line
// break right after the opening bracket is dropped and every other one
// reads as "\n".
func (l *Lexer) longBody(level int, what string) (string, error) {
	start, line := l.pos, l.line
	closer := "]" + strings.Repeat("=", level) + "]"
	end := strings.Index(l.src[l.pos:], closer)
	if end < 0 {
		return "", l.errorf(start, line, "unfinished long %s (no %s)", what, closer)
	}
	stop := l.pos + end
	var b strings.Builder
	first := true
	for l.pos < stop {
		c := l.src[l.pos]
		if c == '\n' || c == '\r' {
			l.newline()
			if !first {
				b.WriteByte('\n')
			}
		} else {
			b.WriteByte(c)
			l.pos++
		}
		first = false
	}
	l.pos = stop + len(closer)
	return b.String(), nil
}

// numeral reads a numeral as Lua's lexer delimits it: a run of letters,
// digits and '.', with a sign right after an exponent mark (e, or p in
// hex). Whether it is a valid number is for the caller to say.
func (l *Lexer) numeral() {
	start := l.pos
	expo := byte('e')
	if strings.HasPrefix(l.src[l.pos:], "0x") || strings.HasPrefix(l.src[l.pos:], "0X") {
		expo = 'p'
	}
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		if isIdent(c) || c == '.' {
			l.pos++
			continue
		}
		if (c == '+' || c == '-') && l.pos > start && l.src[l.pos-1]|0x20 == expo {
			l.pos++
			continue
		}
		return
	}
}

// shortString reads a quoted string with every escape Lua 5.5 has.
func (l *Lexer) shortString(quote byte) (string, error) {
	start, line := l.pos, l.line
	l.pos++
	var b strings.Builder
	for {
		if l.pos >= len(l.src) {
			return "", l.errorf(start, line, "unfinished string")
		}
		switch c := l.src[l.pos]; {
		case c == quote:
			l.pos++
			return b.String(), nil
		case c == '\n' || c == '\r':
			return "", l.errorf(start, line, "unfinished string (a newline inside quotes needs \\n)")
		case c == '\\':
			if err := l.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
}

// escape reads one backslash escape into b.
func (l *Lexer) escape(b *strings.Builder) error {
	at, line := l.pos, l.line
	l.pos++ // the backslash
	if l.pos >= len(l.src) {
		return l.errorf(at, line, "unfinished string")
	}
	c := l.src[l.pos]
	if r, ok := simpleEscapes[c]; ok {
		b.WriteByte(r)
		l.pos++
		return nil
	}
	switch {
	case c == '\n' || c == '\r':
		l.newline()
		b.WriteByte('\n')
	case c == 'x':
		if l.pos+3 > len(l.src) {
			return l.errorf(at, line, "\\x needs two hex digits")
		}
		v, err := strconv.ParseUint(l.src[l.pos+1:l.pos+3], 16, 8)
		if err != nil {
			return l.errorf(at, line, "\\x needs two hex digits")
		}
		b.WriteByte(byte(v))
		l.pos += 3
	case c == 'z':
		l.pos++
		for l.pos < len(l.src) && isSpace(l.src[l.pos]) {
			if c := l.src[l.pos]; c == '\n' || c == '\r' {
				l.newline()
			} else {
				l.pos++
			}
		}
	case c == 'u':
		end := strings.IndexByte(l.src[l.pos:], '}')
		if !strings.HasPrefix(l.src[l.pos:], "u{") || end < 3 {
			return l.errorf(at, line, "\\u needs {hex digits}")
		}
		v, err := strconv.ParseUint(l.src[l.pos+2:l.pos+end], 16, 32)
		if err != nil || v >= 1<<31 {
			return l.errorf(at, line, "\\u{...} must be hex below 2^31")
		}
		b.WriteString(luaUTF8(uint32(v)))
		l.pos += end + 1
	case isDigit(c):
		n := 0
		for i := 0; i < 3 && l.pos < len(l.src) && isDigit(l.src[l.pos]); i++ {
			n = n*10 + int(l.src[l.pos]-'0')
			l.pos++
		}
		if n > 255 {
			return l.errorf(at, line, "decimal escape too large")
		}
		b.WriteByte(byte(n))
	default:
		return l.errorf(at, line, "invalid escape \\%c", c)
	}
	return nil
}

var simpleEscapes = map[byte]byte{
	'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v',
	'\\': '\\', '"': '"', '\'': '\'',
}

// luaUTF8 encodes x as Lua's \u{...} does: UTF-8 extended to 31 bits,
// surrogates included (Go's utf8 package would replace those).
func luaUTF8(x uint32) string {
	if x < 0x80 {
		return string([]byte{byte(x)})
	}
	var buf [6]byte
	n := 0
	limit := uint32(0x3f) // the largest value that fits in the first byte
	for x > limit {
		buf[5-n] = byte(0x80 | (x & 0x3f))
		n++
		x >>= 6
		limit >>= 1
	}
	buf[5-n] = byte((^limit << 1) | x)
	return string(buf[5-n:])
}
