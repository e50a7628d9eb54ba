package group

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from this package's rule")

// Vector is one case of testdata/vectors.json: the owner of a key (its
// bytes in hex: a key is any string, not only UTF-8) among Members.
type Vector struct {
	KeyHex  string   `json:"key_hex"`
	Members []string `json:"members"`
	Owner   string   `json:"owner"`
}

// vectors makes n cases from a fixed seed: keys like player ids and names,
// groups of 1 to 12 members named as ClusterNodeSets and StatefulSets name
// them.
func vectors(n int) []Vector {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]Vector, n)
	for i := range out {
		var key string
		switch r.IntN(3) {
		case 0:
			key = fmt.Sprint(r.Int64N(1 << 40))
		case 1:
			key = fmt.Sprintf("player-%d", r.IntN(100000))
		default:
			b := make([]byte, 1+r.IntN(20))
			for j := range b {
				b[j] = byte(r.IntN(256))
			}
			key = string(b)
		}
		prefix := []string{"game_", "sky-", "room"}[r.IntN(3)]
		members := make([]string, 1+r.IntN(12))
		for j := range members {
			members[j] = fmt.Sprintf("%s%d", prefix, j)
		}
		r.Shuffle(len(members), func(a, b int) { members[a], members[b] = members[b], members[a] })
		out[i] = Vector{KeyHex: hex.EncodeToString([]byte(key)), Members: members, Owner: Owner(key, members)}
	}
	return out
}

// TestVectorsAreThisRule: the shared vectors hold what Owner computes (the
// Lua library is checked against the same file, under real skynet, in
// test/skynetagent).
func TestVectorsAreThisRule(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		var b []byte
		for i, v := range vectors(1000) {
			line, _ := json.Marshal(v)
			if i > 0 {
				b = append(b, ",\n"...)
			}
			b = append(b, line...)
		}
		if err := os.WriteFile(path, append(append([]byte("[\n"), b...), "\n]\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []Vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1000 {
		t.Fatalf("%d vectors, want 1000", len(vs))
	}
	for _, v := range vs {
		key, err := hex.DecodeString(v.KeyHex)
		if err != nil {
			t.Fatal(err)
		}
		if got := Owner(string(key), v.Members); got != v.Owner {
			t.Fatalf("owner of %q among %v: %q, the vectors say %q", key, v.Members, got, v.Owner)
		}
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// TestScalingMovesOnlyTheKeysTheNewMemberTakes: 4 -> 5 members moves
// between 18% and 22% of 100,000 keys, every one of them to the new member;
// 5 -> 4 moves back exactly those; the same names again (a rolling
// restart) move none.
func TestScalingMovesOnlyTheKeysTheNewMemberTakes(t *testing.T) {
	const n = 100000
	four, five := NewMembers(names("game_", 4)), NewMembers(names("game_", 5))
	again := NewMembers(names("game_", 4))
	moved, toOther := 0, 0
	share := map[string]int{}
	for i := range n {
		k := fmt.Sprint(i)
		a, b := four.Owner(k), five.Owner(k)
		share[b]++
		if a != b {
			moved++
			if b != "game_4" {
				toOther++
			}
		}
		if four.Owner(k) != again.Owner(k) {
			t.Fatalf("key %s moved with the same member names", k)
		}
	}
	frac := float64(moved) / n
	t.Logf("4 -> 5 members: %d of %d keys moved (%.2f%%); shares after: %v", moved, n, 100*frac, share)
	if frac < 0.18 || frac > 0.22 {
		t.Errorf("%.2f%% of the keys moved, want 18%% to 22%%", 100*frac)
	}
	if toOther > 0 {
		t.Errorf("%d keys moved between members that stayed", toOther)
	}
	for m, c := range share {
		if c < n/5*9/10 || c > n/5*11/10 {
			t.Errorf("member %s owns %d keys, want within 10%% of %d", m, c, n/5)
		}
	}
}

func TestOwnerOfAnEmptyGroupIsNone(t *testing.T) {
	if got := Owner("k", nil); got != "" {
		t.Fatalf("owner in an empty group: %q", got)
	}
}

// BenchmarkOwner100 routes a key in a group of 100 members.
func BenchmarkOwner100(b *testing.B) {
	m := NewMembers(names("game_", 100))
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint(i * 7919)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_ = m.Owner(keys[i%len(keys)])
	}
}
