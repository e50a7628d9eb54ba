-- seq: records what arrives, in arrival order.
--   "push", i        (sent)   record i
--   "call", i        (called) record i, reply i
--   "get"            reply the list of recorded values and empty it
--   "count"          reply how many are recorded
--   "reset"          forget them; reply true
local skynet = require "skynet"

local got = {}

skynet.start(function()
	skynet.dispatch("lua", function(session, _, cmd, i)
		if cmd == "push" or cmd == "call" then
			got[#got + 1] = i
			if session ~= 0 then
				skynet.retpack(i)
			end
		elseif cmd == "get" then
			local list = got
			got = {}
			skynet.retpack(list)
		elseif cmd == "count" then
			skynet.retpack(#got)
		elseif cmd == "reset" then
			got = {}
			skynet.retpack(true)
		elseif session ~= 0 then
			error("seq: unknown command " .. tostring(cmd))
		end
	end)
end)
