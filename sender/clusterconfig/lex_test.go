package clusterconfig

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func lexAll(t *testing.T, src string) []Token {
	t.Helper()
	l := NewLexer(src)
	var out []Token
	for {
		tok, err := l.Next()
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if tok.Kind == EOF {
			return out
		}
		out = append(out, tok)
	}
}

// The lexer splits Lua as skynet's Lua does: keywords (5.5's global
// included), names, symbols longest first, numerals as written, strings
// with their escapes decoded and long strings' line breaks normalised.
func TestLexerReadsLuaAsLuaDoes(t *testing.T) {
	src := "--[==[ skip ]] ]==] global db_1 = _ENV[\"a\\65\\x42\\u{43}\\z\n  d\"] == 0x1p-2 ..." +
		"'\\\r\nx' [[\r\nl1\r\nl2]] -- end\n3.5e+2"
	type tk struct {
		Kind  Kind
		Text  string
		Value string
		Line  int
	}
	var got []tk
	for _, tok := range lexAll(t, src) {
		got = append(got, tk{tok.Kind, tok.Text, tok.Value, tok.Line})
	}
	want := []tk{
		{Keyword, "global", "", 1}, {Name, "db_1", "", 1}, {Symbol, "=", "", 1}, {Name, "_ENV", "", 1},
		{Symbol, "[", "", 1}, {String, "\"a\\65\\x42\\u{43}\\z\n  d\"", "aABCd", 1}, {Symbol, "]", "", 2},
		{Symbol, "==", "", 2}, {Number, "0x1p-2", "", 2}, {Symbol, "...", "", 2},
		{String, "'\\\r\nx'", "\nx", 2}, {String, "[[\r\nl1\r\nl2]]", "l1\nl2", 3}, {Number, "3.5e+2", "", 6},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestLexerErrorsSayWhereAndWhy(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
		want string
	}{
		{"a\n'open", 2, "unfinished string"},
		{"'a\nb'", 1, "newline inside quotes"},
		{`"\q"`, 1, `invalid escape \q`},
		{`"\300"`, 1, "decimal escape too large"},
		{`"\xg0"`, 1, "two hex digits"},
		{`"\u{80000000}"`, 1, "below 2^31"},
		{"x\n--[[ never closed", 2, "unfinished long comment"},
		{"[=[x]]", 1, "unfinished long string"},
		{"a ? b", 1, "unexpected character '?'"},
	} {
		l := NewLexer(tc.src)
		var err error
		for err == nil {
			var tok Token
			if tok, err = l.Next(); tok.Kind == EOF && err == nil {
				break
			}
		}
		var se *SyntaxError
		if !errors.As(err, &se) || se.Line != tc.line || !strings.Contains(se.Msg, tc.want) {
			t.Errorf("%q: %v; want line %d mentioning %q", tc.src, err, tc.line, tc.want)
		}
	}
}
