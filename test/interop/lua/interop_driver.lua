-- driver: makes this skynet node act on other cluster nodes, as a skynet
-- program would, and reports what it saw. Every reply starts with ok (false
-- and the error text when the action raised an error).
--   "call", node, addr, ...        cluster.call(node, addr, ...)
--   "send", node, addr, ...        cluster.send(node, addr, ...)
--   "query", node, name            cluster.query(node, name)
--   "proxy", node, addr, ...       skynet.call(cluster.proxy(node, addr), "lua", ...)
--   "proxysend", node, addr, ...   skynet.send(cluster.proxy(node, addr), "lua", ...)
--   "pushmany", node, addr, n      cluster.send(node, addr, "push", i) for i = 1..n
--   "big", node, addr, n           cluster.call(node, addr, s) with s the n-byte
--                                  pattern of interop_echo (the service echoes
--                                  it); reply ok, #reply, reply == s, md5 of
--                                  the reply
--   "reload"                       cluster.reload() (re-read the config file)
--   "bench", node, addr, kind, n, conc, size
--                                  kind "call": n cluster.call(node, addr,
--                                  "echo", s) of a size-byte string s from conc
--                                  coroutines; reply ok, elapsed ns, calls
--                                  that succeeded. kind "send": n
--                                  cluster.send(node, addr, "push", s), then
--                                  cluster.call(node, addr, "count"); reply
--                                  ok, elapsed ns, the count
local skynet = require "skynet"
local cluster = require "skynet.cluster"
local md5 = require "md5"

local function pattern(n)
	local block = {}
	for i = 0, 250 do
		block[#block + 1] = string.char(i)
	end
	return string.rep(table.concat(block), n // 251 + 1):sub(1, n)
end

local command = {}

function command.call(node, addr, ...)
	return cluster.call(node, addr, ...)
end

function command.send(node, addr, ...)
	cluster.send(node, addr, ...)
end

function command.query(node, name)
	return cluster.query(node, name)
end

function command.proxy(node, addr, ...)
	return skynet.call(cluster.proxy(node, addr), "lua", ...)
end

function command.proxysend(node, addr, ...)
	skynet.send(cluster.proxy(node, addr), "lua", ...)
end

function command.pushmany(node, addr, n)
	for i = 1, n do
		cluster.send(node, addr, "push", i)
	end
	return n
end

function command.big(node, addr, n)
	local s = pattern(n)
	local r = cluster.call(node, addr, s)
	return #r, r == s, md5.sumhexa(r)
end

function command.sendtwo(node, addr, first, second)
	cluster.send(node, addr, first)
	cluster.send(node, addr, second)
end

function command.reload()
	cluster.reload()
end

function command.bench(node, addr, kind, n, conc, size)
	local payload = string.rep("x", size)
	local start = skynet.hpc()
	if kind == "send" then
		for _ = 1, n do
			cluster.send(node, addr, "push", payload)
		end
		local count = cluster.call(node, addr, "count")
		return skynet.hpc() - start, count
	end
	-- conc coroutines share the n calls; a failed call is counted, not
	-- fatal, so that the waiting coroutine is always woken.
	local left, running, ok = n, conc, 0
	local me = coroutine.running()
	for _ = 1, conc do
		skynet.fork(function()
			while left > 0 do
				left = left - 1
				if pcall(cluster.call, node, addr, "echo", payload) then
					ok = ok + 1
				end
			end
			running = running - 1
			if running == 0 then
				skynet.wakeup(me)
			end
		end)
	end
	skynet.wait(me)
	return skynet.hpc() - start, ok
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = command[cmd]
		if not f then
			skynet.retpack(false, "driver: unknown command " .. tostring(cmd))
			return
		end
		skynet.retpack(pcall(f, ...))
	end)
end)
