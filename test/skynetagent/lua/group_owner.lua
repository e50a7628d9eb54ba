-- group_owner: the owner skycall_group computes for each of a batch of
-- (key, member list) pairs: keys, lists -> owners, in order.
local skynet = require "skynet"
local group = require "skycall_group"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, keys, lists)
		local owners = {}
		for i, key in ipairs(keys) do
			owners[i] = group.owner(key, lists[i])
		end
		skynet.retpack(owners)
	end)
end)
