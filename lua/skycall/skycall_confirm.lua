-- skycall_confirm: answers skycall's node confirmation for this skynet node.
-- Started by skycall.lua, registered for the cluster as @__skycall_node.
--
-- A skycall Client confirms a new connection with a cluster query for
-- "__skycall_node"; skynet's clusteragent answers with the handle of the
-- service registered under that name (this one). The Client then calls that
-- handle with "__skycall_node" and gets the node name and incarnation: a
-- connection that reached another node, or another process of this node,
-- is refused as the wrong node.
local skynet = require "skynet"

local node, incarnation = ...

skynet.start(function()
	skynet.dispatch("lua", function(session, _, cmd)
		if session == 0 then
			return
		end
		if cmd == "__skycall_node" then
			skynet.retpack(node, incarnation)
		else
			skynet.retpack(false, "skycall_confirm: unknown command " .. tostring(cmd))
		end
	end)
end)
