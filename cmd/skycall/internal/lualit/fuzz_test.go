package lualit

import (
	"testing"

	"github.com/skycall-io/skycall/sender/luaseri"
)

// FuzzRoundTrip: whatever the input, Parse returns a value or an error
// (never a panic), and a parsed value prints to a literal that parses back
// to a value that prints the same and packs to the same bytes.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{
		"nil", "true", "-42", "0x7fffffffffffffff", "1.5e300", "-0.0", "0/0", "math.huge",
		`'a\tb\x00\u{7FFFFFFF}'`, "[==[long]]string]==]", "{1, 2, a={b={}}, [true]=false, [1.5]='x'}",
		"{'x'; [1]='y', [2]=3}", "-- c\n{--[[c]]1}", `"\z
		   x"`, "{[9007199254740993]=1, [9007199254740992.0]=2}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vals, err := ParseList(s)
		if err != nil {
			return
		}
		text := FormatList(vals)
		back, err := ParseList(text)
		if err != nil {
			t.Fatalf("%q printed as %s, which does not parse: %v", s, text, err)
		}
		if again := FormatList(back); again != text {
			t.Fatalf("%q: printed %s, then %s", s, text, again)
		}
		p1, err1 := luaseri.Pack(vals...)
		p2, err2 := luaseri.Pack(back...)
		if (err1 == nil) != (err2 == nil) || string(p1) != string(p2) {
			t.Fatalf("%q and its print %s pack differently: %x (%v) vs %x (%v)", s, text, p1, err1, p2, err2)
		}
	})
}
