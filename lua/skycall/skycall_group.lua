-- skycall_group: which member of a group owns a key, computed exactly as
-- skycall's Go sender does (package sender/group): rendezvous hashing over
-- the members' stable node names. A member's score for a key is
-- mix(fnv1a64(member) ~ fnv1a64(key)), mix being MurmurHash3's fmix64; the
-- owner has the highest score as an unsigned integer, the smaller name on a
-- tie. Lua 5.4 integers are 64 bits and wrap on overflow, as Go's uint64.
--
--   local group = require "skycall_group"
--   local node = group.owner(tostring(uid), { "game_0", "game_1", "game_2" })
--   cluster.call(node, "@player", ...)
local M = {}

-- Hexadecimal integer literals wrap to 64 bits, as the constants need.
local FNV_OFFSET = 0xcbf29ce484222325
local FNV_PRIME = 0x100000001b3

-- hash is the 64-bit FNV-1a hash of string s.
function M.hash(s)
	local h = FNV_OFFSET
	for i = 1, #s do
		h = (h ~ s:byte(i)) * FNV_PRIME
	end
	return h
end

local function mix(h)
	h = h ~ (h >> 33)
	h = h * 0xff51afd7ed558ccd
	h = h ~ (h >> 33)
	h = h * 0xc4ceb9fe1a85ec53
	h = h ~ (h >> 33)
	return h
end

-- score is a member's weight for a key, from their hashes.
function M.score(member, key)
	return mix(member ~ key)
end

-- owner is the member of members (a list of node names) that owns key, or
-- nil for an empty list.
function M.owner(key, members)
	local k = M.hash(key)
	local best, best_score
	for _, name in ipairs(members) do
		local s = mix(M.hash(name) ~ k)
		if best == nil or math.ult(best_score, s) or (s == best_score and name < best) then
			best, best_score = name, s
		end
	end
	return best
end

return M
