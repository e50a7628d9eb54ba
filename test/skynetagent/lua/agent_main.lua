-- The start service of test/skynetagent's skynet node: the skycall service
-- (one line, as a user's bootstrap would have it), interop's echo and
-- driver (@echo, @driver: the driver makes this node call other nodes),
-- @group (skycall_group's owners, for the Go test), and the cluster port
-- test/skynetpeer gives it.
local skynet = require "skynet"
local cluster = require "skynet.cluster"

skynet.start(function()
	skynet.uniqueservice "skycall"

	for _, name in ipairs { "echo", "driver" } do
		cluster.register(name, skynet.newservice("interop_" .. name))
	end
	cluster.register("group", skynet.newservice "group_owner")
	local host = assert(skynet.getenv "skycall_host", "config: skycall_host missing")
	local port = assert(tonumber(skynet.getenv "skycall_port"), "config: skycall_port missing")
	skynet.call(skynet.uniqueservice "clusterd", "lua", "listen", host, port)
	skynet.error(string.format("skycall-agent-test listening %s:%d", host, port))
end)
