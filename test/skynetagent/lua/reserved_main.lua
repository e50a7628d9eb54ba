-- A skynet node without skycall's service where another service (interop's
-- fail, which raises on every call) holds the name skycall's confirmation
-- asks for: the confirmation's second round trip gets an error reply.
local skynet = require "skynet"
local cluster = require "skynet.cluster"

skynet.start(function()
	cluster.register("__skycall_node", skynet.newservice "interop_fail")
	cluster.register("echo", skynet.newservice "interop_echo")
	local host = assert(skynet.getenv "skycall_host", "config: skycall_host missing")
	local port = assert(tonumber(skynet.getenv "skycall_port"), "config: skycall_port missing")
	skynet.call(skynet.uniqueservice "clusterd", "lua", "listen", host, port)
end)
