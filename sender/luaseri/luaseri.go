// Package luaseri is skynet.pack and skynet.unpack (lualib-src/lua-seri.c at
// skynet commit f19d1605) for Go values: the payload format of skynet's
// cluster messages. Pack produces the bytes skynet produces for the same
// values (checked against golden vectors made by skynet itself), and Unpack
// reads whatever skynet packs, except userdata.
//
// Pack maps Go values to Lua values:
//
//	nil                              nil
//	bool                             boolean
//	int, int8..int64, uint..uint64,  integer (a uint64 above math.MaxInt64 is
//	uintptr                          an error: Lua integers are 64-bit signed)
//	float32, float64                 float (always packed as a float, even 1.0)
//	string, []byte                   string (binary safe)
//	[]any, any slice or array of     table with only an array part (1..n)
//	supported types
//	map[string]any, map[any]any,     table with only a hash part; keys may be
//	any map with supported keys      bool, integer, float or string, and are
//	                                 packed in a sorted order (false, true,
//	                                 then numbers ascending, then strings by
//	                                 bytes) so the output is deterministic
//	Table, *Table                    table with both an array and a hash part
//
// Anything else (structs, pointers, channels, funcs, complex numbers) is an
// error naming the Go type, e.g. "luaseri: cannot pack chan int". Userdata
// cannot be produced. Named types are packed by their underlying kind.
//
// Unpack maps Lua values back:
//
//	nil -> nil, boolean -> bool, integer -> int64, float -> float64,
//	string -> string,
//	table with only an array part -> []any,
//	table with only a hash part -> map[any]any,
//	table with both -> Table,
//	empty table -> []any{} (an empty Lua table has no part to tell them apart).
//
// Hash keys come back as bool, int64, float64 or string; a float key with an
// integral value becomes an int64, as Lua normalises it. Integer keys in the
// hash part stay hash keys, even 1..n. Table keys that are themselves tables
// cannot be Go map keys and are an error, as are NaN keys. Userdata (type 3)
// is an error: its pointer means nothing outside the process that packed it.
//
// Both directions refuse values nested inside more than 32 tables, skynet's
// MAX_DEPTH rule, which also stops cyclic Go values. Unpack stops reading at
// that depth, so a message nested deeper costs no more to refuse (skynet's
// own unpack has no limit, and overflows its stack). Unpack never panics on
// malformed input: it returns an error naming the offset of the bad byte.
package luaseri

import (
	"errors"
	"math"
)

// Table is a Lua table with both an array part and a hash part.
type Table struct {
	Array []any       // values at keys 1..len(Array)
	Hash  map[any]any // other keys: bool, integer, float or string
}

// Errors callers can test with errors.Is; returned errors wrap them with the
// offending Go type or input offset.
var (
	ErrUnsupported = errors.New("luaseri: cannot pack")
	ErrTooDeep     = errors.New("luaseri: tables nested deeper than 32")
	ErrUserdata    = errors.New("luaseri: userdata cannot cross processes")
	ErrTruncated   = errors.New("luaseri: truncated input")
	ErrMalformed   = errors.New("luaseri: malformed input")
)

// MaxDepth is skynet's MAX_DEPTH: a value nested inside more tables is
// refused, in both directions.
const MaxDepth = 32

// Wire format: a byte type | cookie<<3, then the cookie's data.
const (
	typeNil         = 0
	typeBoolean     = 1
	typeNumber      = 2
	typeUserdata    = 3
	typeShortString = 4
	typeLongString  = 5
	typeTable       = 6

	numberZero  = 0
	numberByte  = 1
	numberWord  = 2
	numberDword = 4
	numberQword = 6
	numberReal  = 8

	maxCookie = 32
)

func combine(t, cookie byte) byte { return t | cookie<<3 }

// normalKey returns a float key as Lua stores it: an integral float becomes
// an integer.
func normalKey(f float64) any {
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f)
	}
	return f
}
