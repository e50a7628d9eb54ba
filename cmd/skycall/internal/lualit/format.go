package lualit

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/skycall-io/skycall/sender/clusterconfig"
	"github.com/skycall-io/skycall/sender/luaseri"
)

// Format writes v as a Lua literal that Parse reads back as v. It takes the
// values luaseri.Unpack returns (and those Parse returns); table keys are
// written in luaseri's packing order (false, true, numbers, strings), so the
// output is deterministic. Strings that are not UTF-8 keep their bytes as
// \x escapes: nothing is lost.
func Format(v any) string {
	var b strings.Builder
	format(&b, v)
	return b.String()
}

// FormatList writes values separated by ", ", as Lua's arguments.
func FormatList(vals []any) string {
	var b strings.Builder
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		format(&b, v)
	}
	return b.String()
}

func format(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("nil")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int64:
		formatInt(b, v)
	case int:
		formatInt(b, int64(v))
	case float64:
		b.WriteString(formatFloat(v))
	case string:
		quote(b, v)
	case []byte:
		quote(b, string(v))
	case []any:
		b.WriteByte('{')
		formatArray(b, v)
		b.WriteByte('}')
	case map[any]any:
		b.WriteByte('{')
		formatHash(b, v)
		b.WriteByte('}')
	case luaseri.Table:
		formatTable(b, &v)
	case *luaseri.Table:
		formatTable(b, v)
	default:
		// luaseri.Unpack returns none of these; say so rather than guess.
		fmt.Fprintf(b, "nil --[[ %T ]]", v)
	}
}

func formatInt(b *strings.Builder, n int64) {
	if n == math.MinInt64 {
		// Lua reads -9223372036854775808 as a float (the numeral
		// overflows before the minus applies); the hex form wraps to it.
		b.WriteString("0x8000000000000000")
		return
	}
	b.WriteString(strconv.FormatInt(n, 10))
}

// formatFloat keeps floats distinguishable from integers (1.0, not 1) and
// uses the shortest form that reads back to the same bits.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "math.huge"
	case math.IsInf(f, -1):
		return "-math.huge"
	case f != f:
		return "0/0"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

func formatTable(b *strings.Builder, t *luaseri.Table) {
	b.WriteByte('{')
	formatArray(b, t.Array)
	if len(t.Array) > 0 && len(t.Hash) > 0 {
		b.WriteString(", ")
	}
	formatHash(b, t.Hash)
	b.WriteByte('}')
}

func formatArray(b *strings.Builder, a []any) {
	for i, v := range a {
		if i > 0 {
			b.WriteString(", ")
		}
		format(b, v)
	}
}

func formatHash(b *strings.Builder, h map[any]any) {
	keys := make([]any, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		if s, ok := k.(string); ok && clusterconfig.IsName(s) {
			b.WriteString(s)
		} else {
			b.WriteByte('[')
			format(b, k)
			b.WriteByte(']')
		}
		b.WriteByte('=')
		format(b, h[k])
	}
}

// keyRank orders key kinds as luaseri packs them.
func keyRank(k any) int {
	switch k := k.(type) {
	case bool:
		if k {
			return 1
		}
		return 0
	case int64, int, float64:
		return 2
	case string:
		return 3
	}
	return 4
}

func keyLess(a, b any) bool {
	ra, rb := keyRank(a), keyRank(b)
	if ra != rb || ra < 2 {
		return ra < rb
	}
	switch ra {
	case 2:
		fa, fb := toFloat(a), toFloat(b)
		if fa != fb {
			return fa < fb
		}
		// Equal as floats but different integers (above 2^53): order by
		// integer value so the order stays total.
		ia, aok := a.(int64)
		ib, bok := b.(int64)
		if aok && bok {
			return ia < ib
		}
		return !aok && bok
	case 3:
		return a.(string) < b.(string)
	}
	return fmt.Sprint(a) < fmt.Sprint(b)
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case int:
		return float64(v)
	case float64:
		return v
	}
	return 0
}

// quote writes s in double quotes with the escapes Lua reads; valid UTF-8
// stays readable, other bytes become \xNN.
func quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(b, `\x%02x`, c)
				break
			}
			if c < utf8.RuneSelf {
				b.WriteByte(c)
				break
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				fmt.Fprintf(b, `\x%02x`, c)
				break
			}
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		i++
	}
	b.WriteByte('"')
}
