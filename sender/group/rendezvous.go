// Package group picks which member of a group owns a key: rendezvous
// (highest random weight) hashing over the members' stable names, never
// their addresses, so a member's restart moves no key and adding or
// removing one moves only the keys it gains or loses. It is the rule the
// Go sender and skycall's Lua library (lua/skycall/skycall_group.lua)
// share; testdata/vectors.json holds what both must compute.
//
// A member's score for a key is mix(Hash(member) XOR Hash(key)), with Hash
// 64-bit FNV-1a and mix MurmurHash3's 64-bit finalizer; the owner is the
// member with the highest score (as an unsigned integer), the smaller name
// on a tie.
package group

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Hash is the 64-bit FNV-1a hash of s.
func Hash(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is MurmurHash3's fmix64: every bit of the result depends on every
// bit of h, which FNV alone does not give for inputs that differ little.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Score is a member's weight for a key, from their hashes.
func Score(member, key uint64) uint64 { return mix(member ^ key) }

// Members is a group's member list with their names hashed once, for
// routing many keys.
type Members struct {
	names  []string
	hashes []uint64
}

// NewMembers hashes names (each a member's stable node name).
func NewMembers(names []string) *Members {
	m := &Members{names: append([]string(nil), names...), hashes: make([]uint64, len(names))}
	for i, n := range names {
		m.hashes[i] = Hash(n)
	}
	return m
}

// Len is the number of members.
func (m *Members) Len() int { return len(m.names) }

// Owner is the member that owns key, or "" for an empty group.
func (m *Members) Owner(key string) string {
	i := m.OwnerIndex(Hash(key))
	if i < 0 {
		return ""
	}
	return m.names[i]
}

// OwnerIndex is the index of the member that owns the key hashed to k, or
// -1 for an empty group.
func (m *Members) OwnerIndex(k uint64) int {
	best, bestScore := -1, uint64(0)
	for i, h := range m.hashes {
		s := Score(h, k)
		if best < 0 || s > bestScore || (s == bestScore && m.names[i] < m.names[best]) {
			best, bestScore = i, s
		}
	}
	return best
}

// Owner is the member of members that owns key, or "" for none.
func Owner(key string, members []string) string { return NewMembers(members).Owner(key) }
