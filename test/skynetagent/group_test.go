package skynetagent

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/skycall-io/skycall/sender/group"
	"github.com/skycall-io/skycall/sender/registry"
)

// TestLuaGroupLibraryPicksTheOwnerGoPicks runs skycall_group.lua in a real
// skynet: for the shared vectors (sender/group/testdata/vectors.json) and
// for 100,000 more (key, member list) pairs, the Lua library names the
// owner package group names, so a Lua caller and a Go caller always pick
// the same member.
func TestLuaGroupLibraryPicksTheOwnerGoPicks(t *testing.T) {
	sky := startSky(t, "sky1", 0, nil)
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))

	type vector struct {
		KeyHex  string   `json:"key_hex"`
		Members []string `json:"members"`
		Owner   string   `json:"owner"`
	}
	b, err := os.ReadFile("../../sender/group/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden []vector
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var lists [][]string
	var want []string
	for _, v := range golden {
		k, err := hex.DecodeString(v.KeyHex)
		if err != nil {
			t.Fatal(err)
		}
		keys, lists, want = append(keys, string(k)), append(lists, v.Members), append(want, v.Owner)
	}
	r := rand.New(rand.NewPCG(7, 11))
	for range 100000 {
		key := make([]byte, 1+r.IntN(24))
		for j := range key {
			key[j] = byte(r.IntN(256))
		}
		members := make([]string, 1+r.IntN(100))
		for j := range members {
			members[j] = fmt.Sprintf("game_%d", r.IntN(1000))
		}
		keys, lists, want = append(keys, string(key)), append(lists, members), append(want, group.Owner(string(key), members))
	}
	const batch = 2000
	for from := 0; from < len(keys); from += batch {
		to := min(from+batch, len(keys))
		got, err := c.CallValues(testCtx(t), "sky1", "@group", keys[from:to], lists[from:to])
		if err != nil {
			t.Fatal(err)
		}
		owners, _ := got[0].([]any)
		if len(owners) != to-from {
			t.Fatalf("skynet answered %d owners for %d pairs", len(owners), to-from)
		}
		for i, o := range owners {
			if o != want[from+i] {
				t.Fatalf("pair %d: Lua picks %v, Go picks %q (key %x, members %v)", from+i, o, want[from+i], keys[from+i], lists[from+i])
			}
		}
	}
	t.Logf("Lua and Go agree on the owner of %d (key, member list) pairs (%d of them the shared vectors)", len(keys), len(golden))
}
