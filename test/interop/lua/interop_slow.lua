-- slow: "sleep", centiseconds, v -> reply v after that long (other calls
-- proceed meanwhile: skynet.sleep yields).
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, cs, v)
		assert(cmd == "sleep", "slow: unknown command")
		skynet.error("slow: sleeping", v)
		skynet.sleep(cs)
		skynet.retpack(v)
	end)
end)
