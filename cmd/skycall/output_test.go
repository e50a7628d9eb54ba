package main

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/skycall-io/skycall/sender/luaseri"
)

// TestJSONOutputLosesNoValue: every unpacked value has a JSON form that
// keeps it, including keys that collide once written as strings.
func TestJSONOutputLosesNoValue(t *testing.T) {
	vals := []any{
		int64(math.MaxInt64), math.Inf(1), math.NaN(), "\xff\x00",
		map[any]any{int64(1): "int", "1": "string", true: "bool", 2.5: "float"},
		luaseri.Table{Array: []any{"first"}, Hash: map[any]any{"1": "string one", "k": []any{}}},
	}
	b, err := json.Marshal(jsonValues(vals))
	if err != nil {
		t.Fatal(err)
	}
	want := `[9223372036854775807,"inf","nan",{"base64":"/wA="},` +
		`{"\"1\"":"string","1":"int","2.5":"float","true":"bool"},` +
		`{"\"1\"":"string one","1":"first","k":[]}]`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}
