-- echo: the values it was sent, as they were packed.
--   ...                    any other first value: reply with all values
--   "digest", s            reply #s, md5 hex of s
--   "make", n              reply a string of n bytes, byte i (0-based) = i % 251
local skynet = require "skynet"
local md5 = require "md5"

local function pattern(n)
	local block = {}
	for i = 0, 250 do
		block[#block + 1] = string.char(i)
	end
	local s = table.concat(block)
	return string.rep(s, n // 251 + 1):sub(1, n)
end

skynet.start(function()
	skynet.dispatch("lua", function(session, _, cmd, ...)
		if session == 0 then
			return -- a push: nothing to reply
		end
		if cmd == "digest" then
			local s = ...
			skynet.retpack(#s, md5.sumhexa(s))
		elseif cmd == "make" then
			skynet.retpack(pattern((...)))
		else
			skynet.retpack(cmd, ...)
		end
	end)
end)
