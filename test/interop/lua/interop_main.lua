-- The start service of skycall's interop skynet node (test/interop).
-- It opens the cluster port test/skynetpeer gives it (skycall_host,
-- skycall_port), starts the services below, names each one for the cluster
-- (@name, via cluster.register) and locally (.name), and logs their handles.
--
--   echo    replies with the values it was sent; digest / make for payloads
--   seq     records pushes and calls in arrival order
--   fail    fails in the ways a skynet service can
--   slow    replies after a delay (calls in flight when the node dies)
--   driver  makes this node call, send to, query and proxy other nodes
local skynet = require "skynet"
require "skynet.manager"
local cluster = require "skynet.cluster"

skynet.start(function()
	local host = assert(skynet.getenv "skycall_host", "config: skycall_host missing")
	local port = assert(tonumber(skynet.getenv "skycall_port"), "config: skycall_port missing")
	for _, name in ipairs { "echo", "seq", "fail", "slow", "driver" } do
		local h = skynet.newservice("interop_" .. name)
		skynet.name("." .. name, h)
		cluster.register(name, h)
		skynet.error(string.format("skycall-interop service %s :%08x", name, h))
	end
	local clusterd = skynet.uniqueservice "clusterd"
	skynet.call(clusterd, "lua", "listen", host, port)
	skynet.error(string.format("skycall-interop listening %s:%d", host, port))
end)
