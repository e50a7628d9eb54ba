package luaseri

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
)

type packVector struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Hex  string `json:"hex"`
}

func loadPackVectors(t testing.TB) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var v packVector
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		if v.Kind != "pack" {
			continue
		}
		b, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		out[v.Name] = b
	}
	return out
}

func seq(from, to int64) []any {
	var out []any
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// skynetValues are the Lua values behind each pack vector (PROTOCOL.md), as
// Unpack returns them; packing them gives the vector's bytes.
var skynetValues = map[string][]any{
	"nil":             {nil},
	"true_false":      {true, false},
	"zero":            {int64(0)},
	"byte_1":          {int64(1)},
	"byte_255":        {int64(255)},
	"word_256":        {int64(256)},
	"word_65535":      {int64(65535)},
	"dword_65536":     {int64(65536)},
	"dword_neg1":      {int64(-1)},
	"dword_int32max":  {int64(math.MaxInt32)},
	"dword_int32min":  {int64(math.MinInt32)},
	"qword_2p31":      {int64(1 << 31)},
	"qword_neg_2p40":  {int64(-(1 << 40))},
	"qword_int64max":  {int64(math.MaxInt64)},
	"qword_int64min":  {int64(math.MinInt64)},
	"real_1_5":        {1.5},
	"real_1_0":        {1.0},
	"real_neg_0_25":   {-0.25},
	"str_empty":       {""},
	"str_abc":         {"abc"},
	"str_31":          {strings.Repeat("x", 31)},
	"str_32":          {strings.Repeat("y", 32)},
	"str_40000":       {strings.Repeat("ab", 20000)},
	"str_70000":       {strings.Repeat("z", 70000)},
	"str_binary":      {"\x00\x01\x02\xff"},
	"table_empty":     {[]any{}},
	"table_array_1_2": {[]any{int64(1), int64(2)}},
	"table_hash_a1":   {map[any]any{"a": int64(1)}},
	"table_array40":   {seq(1, 40)},
	"table_nested": {Table{
		Array: []any{int64(1), []any{int64(2), []any{int64(3)}}},
		Hash:  map[any]any{"k": map[any]any{"x": "y"}},
	}},
	"multi_echo":  {"echo", "hello", int64(42)},
	"multi_mixed": {"cmd", true, 3.25, nil, Table{Array: []any{"a"}, Hash: map[any]any{"b": false}}},
}

func TestPackReproducesSkynetVectors(t *testing.T) {
	vectors := loadPackVectors(t)
	if len(vectors) != len(skynetValues) {
		t.Fatalf("%d pack vectors, %d value lists: keep them in step", len(vectors), len(skynetValues))
	}
	for name, want := range vectors {
		t.Run(name, func(t *testing.T) {
			values, ok := skynetValues[name]
			if !ok {
				t.Fatalf("no value list for vector %s", name)
			}
			// Every table in the vectors has at most one hash key, so the
			// bytes are deterministic in Lua too and compared exactly.
			got, err := Pack(values...)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Pack = %x, want %x", head(got), head(want))
			}
		})
	}
}

func TestUnpackSkynetVectorsGivesBackValues(t *testing.T) {
	for name, data := range loadPackVectors(t) {
		t.Run(name, func(t *testing.T) {
			got, err := Unpack(data)
			if err != nil {
				t.Fatal(err)
			}
			if !equalValues(got, skynetValues[name]) {
				t.Fatalf("Unpack = %#v, want %#v", short(got), short(skynetValues[name]))
			}
		})
	}
}

func TestPackPicksSkynetIntegerWidths(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{0, "02"},
		{int8(1), "0a01"},
		{uint8(255), "0aff"},
		{int16(256), "120001"},
		{uint16(65535), "12ffff"},
		{int32(65536), "2200000100"},
		{-1, "22ffffffff"},
		{int64(math.MinInt32), "2200000080"},
		{uint32(math.MaxInt32), "22ffffff7f"},
		{uint32(math.MaxInt32 + 1), "320000008000000000"},
		{int64(math.MinInt32 - 1), "32ffffff7fffffffff"},
		{uint64(math.MaxInt64), "32ffffffffffffff7f"},
		{uintptr(7), "0a07"},
		{float32(1), "42000000000000f03f"},
		{0.0, "420000000000000000"},
	}
	for _, tt := range tests {
		got, err := Pack(tt.v)
		if err != nil {
			t.Fatalf("Pack(%T %v): %v", tt.v, tt.v, err)
		}
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("Pack(%T %v) = %x, want %s", tt.v, tt.v, got, tt.want)
		}
	}
}

type (
	myInt    int16
	myString string
	myList   []myInt
	myBytes  []byte
)

func TestPackMapsGoTypesToLuaValues(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want any // as Unpack returns it
	}{
		{"bytes_are_binary_strings", []byte{0, 0xff}, "\x00\xff"},
		{"named_bytes", myBytes("hi"), "hi"},
		{"byte_array", [2]byte{'o', 'k'}, "ok"},
		{"named_int", myInt(-3), int64(-3)},
		{"named_string", myString("s"), "s"},
		{"typed_slice", []int{1, 2}, []any{int64(1), int64(2)}},
		{"named_slice", myList{4}, []any{int64(4)}},
		{"array", [2]string{"a", "b"}, []any{"a", "b"}},
		{"nil_slice_is_empty_table", []any(nil), []any{}},
		{"nil_map_is_empty_table", map[string]any(nil), []any{}},
		{"map_string_any", map[string]any{"a": 1, "b": []any{true}}, map[any]any{"a": int64(1), "b": []any{true}}},
		{"map_int_keys_stay_hash", map[int]string{1: "x", 2: "y"}, map[any]any{int64(1): "x", int64(2): "y"}},
		{"map_float_keys", map[float64]bool{0.5: true}, map[any]any{0.5: true}},
		{"table_pointer", &Table{Array: []any{"a"}, Hash: map[any]any{"n": 1}}, Table{Array: []any{"a"}, Hash: map[any]any{"n": int64(1)}}},
		{"table_without_hash_is_array", Table{Array: []any{"a"}}, []any{"a"}},
		{"slice_of_maps", []map[string]int{{"a": 1}}, []any{map[any]any{"a": int64(1)}}},
		{"long_array_uses_size_value", seq(1, 31), seq(1, 31)},
		{"array_with_nils", []any{nil, "x", nil}, []any{nil, "x", nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Pack(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unpack(b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalValues(got, []any{tt.want}) {
				t.Fatalf("Unpack(Pack(%#v)) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestPackWritesHashKeysInSortedOrder(t *testing.T) {
	m := map[any]any{"b": 1, "a": 2, int64(3): 3, 1.5: 4, true: 5, false: 6, -7: 7, uint8(2): 8}
	want := "06" +
		"01" + "0a06" + // false
		"09" + "0a05" + // true
		"22f9ffffff" + "0a07" + // -7
		"42000000000000f83f" + "0a04" + // 1.5
		"0a02" + "0a08" + // 2
		"0a03" + "0a03" + // 3
		"0c61" + "0a02" + // "a"
		"0c62" + "0a01" + // "b"
		"00"
	for i := 0; i < 20; i++ {
		got, err := Pack(m)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != want {
			t.Fatalf("Pack = %x\n  want %s", got, want)
		}
	}
}

func TestPackRefusesWhatLuaCannotHold(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	tests := []struct {
		name string
		in   any
		want error
		msg  string
	}{
		{"chan", make(chan int), ErrUnsupported, "luaseri: cannot pack chan int"},
		{"struct", struct{ A int }{1}, ErrUnsupported, "cannot pack struct { A int }"},
		{"pointer", new(int), ErrUnsupported, "cannot pack *int"},
		{"func", func() {}, ErrUnsupported, "cannot pack func()"},
		{"complex", complex(1, 2), ErrUnsupported, "cannot pack complex128"},
		{"uint64_above_int64", uint64(math.MaxInt64 + 1), ErrUnsupported, "above the Lua integer range"},
		{"nested_unsupported", []any{1, map[string]any{"f": make(chan bool)}}, ErrUnsupported, "chan bool"},
		{"nil_key", map[any]any{nil: 1}, ErrUnsupported, "nil table key"},
		{"nan_key", map[float64]int{math.NaN(): 1}, ErrUnsupported, "NaN table key"},
		{"struct_key", map[struct{}]int{{}: 1}, ErrUnsupported, "struct {} as a table key"},
		{"key_in_array_part", Table{Array: []any{"a", "b"}, Hash: map[any]any{int64(2): "x"}}, ErrUnsupported, "index of the array part"},
		{"nil_table_pointer", (*Table)(nil), ErrUnsupported, "nil *luaseri.Table"},
		{"cyclic", cyclic, ErrTooDeep, "deeper than 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendPack(dst, "first", tt.in)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v saying %q", err, tt.want, tt.msg)
			}
			if string(got) != "keep" {
				t.Fatalf("dst = %q after an error, want it unchanged", got)
			}
		})
	}
}

// nested returns v inside k tables, and its packing.
func nested(k int) (any, []byte) {
	v := any(int64(1))
	for i := 0; i < k; i++ {
		v = []any{v}
	}
	b := append(bytes.Repeat([]byte{0x0e}, k), 0x0a, 0x01)
	return v, append(b, bytes.Repeat([]byte{0x00}, k)...)
}

func TestNestingBeyond32TablesIsRefusedBothWays(t *testing.T) {
	v, b := nested(32)
	got, err := Pack(v)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("32 levels: Pack = %x, %v; want %x", got, err, b)
	}
	if vals, err := Unpack(b); err != nil || !equalValues(vals, []any{v}) {
		t.Fatalf("32 levels: Unpack = %v, %v", vals, err)
	}
	v, b = nested(33)
	if _, err := Pack(v); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("33 levels: Pack err = %v, want ErrTooDeep", err)
	}
	if _, err := Unpack(b); !errors.Is(err, ErrTooDeep) || !strings.Contains(err.Error(), "offset 33") {
		t.Fatalf("33 levels: Unpack err = %v, want ErrTooDeep at offset 33", err)
	}
}

// emptyNested returns k tables each inside the one before, the innermost
// empty, and its packing as skynet writes it (lua-seri.c: a table's array
// size in its type byte, its elements, then nil).
func emptyNested(k int) (any, []byte) {
	v := any([]any{})
	for i := 1; i < k; i++ {
		v = []any{v}
	}
	b := append(bytes.Repeat([]byte{0x0e}, k-1), 0x06)
	return v, append(b, bytes.Repeat([]byte{0x00}, k)...)
}

func TestEmptyTableAtTheDepthLimitReadsBack(t *testing.T) {
	// skynet.pack refuses a value inside more than 32 tables, but the 33rd
	// table itself, empty, has no value inside: skynet packs it.
	v, b := emptyNested(33)
	got, err := Pack(v)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("33 tables, the last empty: Pack = %x, %v; want %x", got, err, b)
	}
	if vals, err := Unpack(b); err != nil || !equalValues(vals, []any{v}) {
		t.Fatalf("33 tables, the last empty: Unpack = %v, %v; want them back", vals, err)
	}
	v, b = emptyNested(34)
	if _, err := Pack(v); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("34 tables: Pack err = %v, want ErrTooDeep", err)
	}
	if _, err := Unpack(b); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("34 tables: Unpack err = %v, want ErrTooDeep", err)
	}
}

// A message nested 200,000 tables deep (400 KB) makes skynet's own unpack,
// which recurses without a limit, overflow its C stack (docs/reliability.md).
func TestUnpackRefusesAMessage200000TablesDeepAtOnce(t *testing.T) {
	_, b := nested(200000)
	if len(b) < 400000 {
		t.Fatalf("payload is %d bytes, want 400 KB", len(b))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Unpack(b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooDeep) || !strings.Contains(err.Error(), "offset 33") {
		t.Fatalf("Unpack = %v, want ErrTooDeep at offset 33", err)
	}
	// It stops at the limit: 33 one-element tables, not 200,000.
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("Unpack allocated %d bytes before refusing, want under 64 KiB", n)
	}
}

func TestUnpackRejectsMalformedInputNamingTheOffset(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want error
		msg  string
	}{
		{"userdata", "0a01" + "030000000000000000", ErrUserdata, "luaseri: userdata cannot cross processes (at offset 2)"},
		{"truncated_byte", "0a", ErrTruncated, "offset 0: a byte integer needs 1 bytes, 0 left"},
		{"truncated_word", "0a0112ff", ErrTruncated, "offset 2: a word integer"},
		{"truncated_dword", "22ffff", ErrTruncated, "dword"},
		{"truncated_qword", "32ff", ErrTruncated, "qword"},
		{"truncated_float", "42000000", ErrTruncated, "a float"},
		{"truncated_short_string", "1c6162", ErrTruncated, "offset 0: a short string needs 3 bytes, 2 left"},
		{"truncated_long_string_length", "1501", ErrTruncated, "a string length"},
		{"truncated_long_string", "250000010061", ErrTruncated, "a long string needs 65536 bytes"},
		{"bad_long_string_cookie", "1d0100", ErrMalformed, "long string cookie 3"},
		{"bad_number_cookie", "1a", ErrMalformed, "offset 0: number cookie 3"},
		{"unknown_type", "0a0107", ErrMalformed, "offset 2: unknown type 7"},
		{"table_without_end", "160a010a02", ErrTruncated, "offset 5: a value"},
		{"table_hash_without_value", "060c61", ErrTruncated, "offset 3"},
		{"array_size_not_integer", "fe0c61", ErrMalformed, "offset 1: array size is not an integer"},
		{"array_size_float", "fe420000000000000000", ErrMalformed, "array size is not an integer"},
		{"array_size_beyond_input", "fe22ffffff7f00", ErrMalformed, "array size 2147483647 with 1 bytes left"},
		{"array_size_negative", "fe22ffffffff00", ErrMalformed, "array size -1"},
		{"nan_key", "06" + "42000000000000f87f" + "0a01" + "00", ErrMalformed, "offset 1: NaN table key"},
		{"table_key", "06" + "0600" + "0a01" + "00", ErrMalformed, "table used as a table key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := hex.DecodeString(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unpack(data)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Unpack = %v, %v; want %v saying %q", got, err, tt.want, tt.msg)
			}
		})
	}
}

func TestUnpackAssignsHashKeysAsLuaDoes(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want any
	}{
		// {[1]="a",[2]="b"} with an empty array part stays a hash.
		{"integer_keys_1_to_n_stay_hash_keys", "06" + "0a01" + "0c61" + "0a02" + "0c62" + "00",
			map[any]any{int64(1): "a", int64(2): "b"}},
		{"integral_float_key_becomes_integer", "06" + "4200000000000000c0" + "0c61" + "00",
			map[any]any{int64(-2): "a"}},
		{"key_inside_array_part_replaces_element", "0e" + "0c61" + "0a01" + "0c62" + "00", []any{"b"}},
		{"nil_value_removes_key", "06" + "0c6b" + "0a01" + "0c6b" + "00" + "00", []any{}},
		{"any_nonzero_boolean_cookie_is_true", "11", true},
		{"nil_with_cookie_is_nil", "f8", nil},
		{"mixed_table", "0e" + "0a05" + "0c6b" + "09" + "00", Table{Array: []any{int64(5)}, Hash: map[any]any{"k": true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, _ := hex.DecodeString(tt.hex)
			got, err := Unpack(data)
			if err != nil {
				t.Fatal(err)
			}
			if !equalValues(got, []any{tt.want}) {
				t.Fatalf("Unpack = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestUnpackOfNothingIsNoValues(t *testing.T) {
	got, err := Unpack(nil)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Unpack(nil) = %#v, %v; want an empty slice", got, err)
	}
}

func TestRoundTripKeepsValues(t *testing.T) {
	values := []any{
		nil, true, false, int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64), math.Inf(-1), 2.5,
		"", strings.Repeat("s", 0xFFFF), strings.Repeat("t", 0x10000),
		[]any{}, seq(1, 100), map[any]any{"k": []any{"v"}, int64(7): 1.25, false: "no"},
		Table{Array: []any{"x", nil, []any{}}, Hash: map[any]any{"y": map[any]any{"z": int64(1)}}},
	}
	b, err := Pack(values...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unpack(b)
	if err != nil {
		t.Fatal(err)
	}
	if !equalValues(got, values) {
		t.Fatalf("round trip changed the values:\n got %#v\nwant %#v", short(got), short(values))
	}
	again, err := Pack(got...)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("repacking gave different bytes (%v)", err)
	}
}

// equalValues compares unpacked values, treating NaN as equal to itself.
func equalValues(a, b any) bool {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[any]any:
		y, ok := b.(map[any]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalValues(v, w) {
				return false
			}
		}
		return true
	case Table:
		y, ok := b.(Table)
		return ok && equalValues(x.Array, y.Array) && equalValues(x.Hash, y.Hash)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	}
	return a == b
}

func head(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// short keeps failure messages readable when values hold long strings.
func short(vs []any) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		if s, ok := v.(string); ok && len(s) > 40 {
			v = s[:40] + "…"
		}
		out[i] = v
	}
	return out
}
