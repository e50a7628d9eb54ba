-- fail: "error", msg -> raise a Lua error with msg (the caller's call fails).
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, msg)
		if cmd == "error" then
			error(msg)
		end
		error("fail: unknown command " .. tostring(cmd))
	end)
end)
