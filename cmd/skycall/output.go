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
		return jsonObject(nil, v)
	case luaseri.Table:
		return jsonObject(v.Array, v.Hash)
	}
	return v
}

// jsonObject writes a table as an object: list items under "1".."n",
// other non-string keys as Lua literals ("10", "true", "2.5"), string keys
// as they are, unless one would collide with a key already written ({[1]=a,
// ["1"]=b}): that string key is then written as a Lua literal ("\"1\""),
// so that no entry is lost.
func jsonObject(array []any, hash map[any]any) map[string]any {
	obj := make(map[string]any, len(array)+len(hash))
	for i, val := range array {
		obj[strconv.Itoa(i+1)] = jsonValue(val)
	}
	var strs []string
	for k, val := range hash {
		if s, ok := k.(string); ok {
			strs = append(strs, s)
			continue
		}
		obj[lualit.Format(k)] = jsonValue(val)
	}
	sort.Strings(strs) // a stable choice of which colliding key is quoted
	for _, s := range strs {
		key := s
		for {
			if _, taken := obj[key]; !taken {
				break
			}
			key = lualit.Format(key)
		}
		obj[key] = jsonValue(hash[s])
	}
	return obj
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
