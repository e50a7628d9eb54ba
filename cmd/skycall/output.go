package main

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/skycall-io/skycall/cmd/skycall/internal/lualit"
	"github.com/skycall-io/skycall/sender/luaseri"
)

// jsonValues converts unpacked Lua values to what encoding/json can write
// without losing anything: integers stay exact, tables with only a list
// part become arrays and other tables objects (keys written as Lua
// literals when they are not strings: "1", "true", "2.5"), floats that JSON
// cannot hold become strings ("inf", "-inf", "nan"), and strings that are
// not UTF-8 become {"base64": "..."}.
func jsonValues(vals []any) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch v := v.(type) {
	case int64:
		return json.Number(strconv.FormatInt(v, 10))
	case float64:
		switch {
		case math.IsInf(v, 1):
			return "inf"
		case math.IsInf(v, -1):
			return "-inf"
		case v != v:
			return "nan"
		}
		return v
	case string:
		if !utf8.ValidString(v) {
			return map[string]string{"base64": base64.StdEncoding.EncodeToString([]byte(v))}
		}
		return v
	case []any:
		return jsonValues(v)
	case map[any]any:
		obj := make(map[string]any, len(v))
		for k, val := range v {
			obj[jsonKey(k)] = jsonValue(val)
		}
		return obj
	case luaseri.Table:
		obj := make(map[string]any, len(v.Array)+len(v.Hash))
		for i, val := range v.Array {
			obj[strconv.Itoa(i+1)] = jsonValue(val)
		}
		for k, val := range v.Hash {
			obj[jsonKey(k)] = jsonValue(val)
		}
		return obj
	}
	return v
}

func jsonKey(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	return lualit.Format(k)
}

// sortedKeys returns m's keys in order, for stable text output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
