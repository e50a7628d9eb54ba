package lualit

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/sender/luaseri"
)

// TestParsedLiteralsPackAsSkynetPacksThem ties the parser to skynet itself:
// the literals behind luaseri's golden vectors (made by a real skynet) pack
// to the same bytes.
func TestParsedLiteralsPackAsSkynetPacksThem(t *testing.T) {
	vectors := map[string]string{}
	f, err := os.Open("../../../../sender/luaseri/testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct{ Kind, Name, Hex string }
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v.Kind == "pack" {
			vectors[v.Name] = v.Hex
		}
	}
	for name, lit := range map[string]string{
		"nil":             "nil",
		"true_false":      "true, false",
		"byte_255":        "255",
		"dword_neg1":      "-1",
		"qword_int64max":  "0x7fffffffffffffff",
		"qword_int64min":  "0x8000000000000000",
		"real_1_5":        "1.5",
		"real_1_0":        "1.0",
		"real_neg_0_25":   "-.25",
		"str_empty":       "''",
		"str_abc":         `"abc"`,
		"str_binary":      `"\0\1\x02\255"`,
		"table_empty":     "{}",
		"table_array_1_2": "{1, 2}",
		"table_hash_a1":   "{a=1}",
		"table_nested":    "{1, {2, {3}}, k={x='y'}}",
		"multi_mixed":     "'cmd', true, 3.25, nil, {'a'; b=false}",
	} {
		want, ok := vectors[name]
		if !ok {
			t.Fatalf("no golden vector %q", name)
		}
		vals, err := ParseList(lit)
		if err != nil {
			t.Fatalf("%s: ParseList(%q): %v", name, lit, err)
		}
		got, err := luaseri.Pack(vals...)
		if err != nil {
			t.Fatalf("%s: Pack: %v", name, err)
		}
		if hex.EncodeToString(got) != want {
			t.Errorf("%s: %s packs as %x, skynet packs %s", name, lit, got, want)
		}
	}
}

func TestParseGivesLuaseriValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"nil", nil},
		{"  true -- a comment", true},
		{"--[[ long\ncomment ]] false", false},
		{"42", int64(42)},
		{"-42", int64(-42)},
		{"- 7", int64(-7)},
		{"0x10", int64(16)},
		{"0xffffffffffffffff", int64(-1)}, // hex wraps, as in Lua 5.4
		{"9223372036854775808", 9223372036854775808.0},
		{"3.0", 3.0},
		{"1e3", 1000.0},
		{"1E-2", 0.01},
		{".5", 0.5},
		{"0x1p4", 16.0},
		{"0x.8", 0.5},
		{"math.huge", math.Inf(1)},
		{"-math.huge", math.Inf(-1)},
		{"'it''s'"[0:0] + `'it\'s'`, "it's"},
		{`"tab\tnl\nq\"bs\\"`, "tab\tnl\nq\"bs\\"},
		{`"\65\066\x43\u{48}\u{20AC}"`, "ABCH€"},
		{"\"a\\z   \n  b\"", "ab"},
		{"\"line\\\nnext\"", "line\nnext"},
		{"[[\nlong 'raw' \\n]]", "long 'raw' \\n"},
		{"[==[a]]b]==]", "a]]b"},
		{"{}", []any{}},
		{"{1, 'two', 3.5}", []any{int64(1), "two", 3.5}},
		{"{1; 2;}", []any{int64(1), int64(2)}},
		{"{a=1, ['b c']=2, [3]=3, [true]=4, [2.0]=5}", map[any]any{"a": int64(1), "b c": int64(2), int64(3): int64(3), true: int64(4), int64(2): int64(5)}},
		{"{a=nil}", []any{}},
		{"{1, a=1}", luaseri.Table{Array: []any{int64(1)}, Hash: map[any]any{"a": int64(1)}}},
		{"{'x', [1]='y'}", []any{"x"}}, // the list part wins, as in Lua
		{"{[[s]], [ [[k]] ]=1}", luaseri.Table{Array: []any{"s"}, Hash: map[any]any{"k": int64(1)}}},
		{"{{}, {{}}}", []any{[]any{}, []any{[]any{}}}},
		{"{math=1}", map[any]any{"math": int64(1)}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	if v, err := Parse("0/0"); err != nil || !math.IsNaN(v.(float64)) {
		t.Errorf("Parse(0/0) = %v, %v; want NaN", v, err)
	}
	if v, err := Parse("-0.0"); err != nil || !math.Signbit(v.(float64)) {
		t.Errorf("Parse(-0.0) = %v, %v; want negative zero", v, err)
	}
}

func TestMalformedLiteralSaysWhereAndWhy(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "end of input"},
		{"get", `"get" is not a literal (quote strings: 'get')`},
		{"'open", "unfinished string"},
		{"\"a\nb\"", "newline inside quotes"},
		{`"\q"`, `invalid escape \q`},
		{`"\300"`, "decimal escape too large"},
		{`"\xg0"`, "two hex digits"},
		{`"\u{110000000}"`, "below 2^31"},
		{"{1, 2", "missing '}'"},
		{"{1 2}", "expected ',' or '}'"},
		{"{[nil]=1}", "table key is nil"},
		{"{[{}]=1}", "keys that are tables"},
		{"{[0/0]=1}", "NaN"},
		{"{1, nil, 3}", "nil inside a table's list part"},
		{"{true=1}", "expected ',' or '}'"},
		{"1 2", "after the value"},
		{"0x", "malformed number"},
		{"1e", "malformed number"},
		{"12abc", "malformed number"},
		{"1_000", "malformed number"},
		{"-", "expected a number"},
		{"[=[x]]", "unfinished long string"},
		{strings.Repeat("{", 34) + strings.Repeat("}", 34), "at byte 34 of \"{{{"},
		{strings.Repeat("{", 33) + "1" + strings.Repeat("}", 33), "nested deeper than 32"},
		{strings.Repeat("{", 100000), "nested deeper than 32"},
		{strings.Repeat("{", 200000) + strings.Repeat("}", 200000), "nested deeper than 32"},
	} {
		_, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q): no error, want one containing %q", tc.in, tc.want)
			continue
		}
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax containing %q", tc.in, err, tc.want)
		}
	}
	if _, err := ParseList("1, "); err == nil {
		t.Error("ParseList with a trailing comma: no error")
	}
}

func TestFormatIsCanonicalLua(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, "nil"},
		{int64(-3), "-3"},
		{int64(math.MinInt64), "0x8000000000000000"},
		{3.0, "3.0"},
		{1e100, "1e+100"},
		{math.Copysign(0, -1), "-0.0"},
		{math.Inf(-1), "-math.huge"},
		{math.NaN(), "0/0"},
		{"a\"b\\c\n\x00\xff€", `"a\"b\\c\n\x00\xff€"`},
		{[]any{int64(1), "x"}, `{1, "x"}`},
		{map[any]any{"b": true, "a": int64(1), "not": int64(2), "1x": int64(3), int64(2): 1.5, false: "f", true: "t"},
			`{[false]="f", [true]="t", [2]=1.5, ["1x"]=3, a=1, b=true, ["not"]=2}`},
		{luaseri.Table{Array: []any{"a"}, Hash: map[any]any{"k": []any{}}}, `{"a", k={}}`},
		{&luaseri.Table{Hash: map[any]any{int64(5): nil}}, `{[5]=nil}`},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got := FormatList([]any{"ok", int64(1)}); got != `"ok", 1` {
		t.Errorf("FormatList = %s", got)
	}
}

// TestUnpackedRepliesFormatAndParseBack: what a node answers, printed by
// Format, reads back to the same values (so a reply can be pasted into the
// next call).
func TestUnpackedRepliesFormatAndParseBack(t *testing.T) {
	in := []any{"ok", int64(42), 2.5, true, nil, []any{int64(1), int64(2)},
		map[string]any{"name": "db", "ports": []any{int64(2528)}},
		luaseri.Table{Array: []any{"x"}, Hash: map[any]any{int64(10): "ten"}}, "\x00bin\xfe"}
	packed, err := luaseri.Pack(in...)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := luaseri.Unpack(packed)
	if err != nil {
		t.Fatal(err)
	}
	text := FormatList(vals)
	back, err := ParseList(text)
	if err != nil {
		t.Fatalf("ParseList(%s): %v", text, err)
	}
	repacked, err := luaseri.Pack(back...)
	if err != nil {
		t.Fatal(err)
	}
	if string(repacked) != string(packed) {
		t.Fatalf("%s packs differently after the round trip", text)
	}
}

// TestLiteralsNestAsDeepAsSkynetPacks: the parser's limit is skynet.pack's,
// neither more nor less. A value inside 32 tables packs; so does an empty
// 33rd table, which holds no value; a value inside 33 does not.
func TestLiteralsNestAsDeepAsSkynetPacks(t *testing.T) {
	for _, lit := range []string{
		strings.Repeat("{", 32) + "1" + strings.Repeat("}", 32),
		strings.Repeat("{", 33) + strings.Repeat("}", 33),
	} {
		v, err := Parse(lit)
		if err != nil {
			t.Fatalf("Parse(%.40q...): %v", lit, err)
		}
		if _, err := luaseri.Pack(v); err != nil {
			t.Fatalf("Pack(Parse(%.40q...)): %v", lit, err)
		}
	}
}
