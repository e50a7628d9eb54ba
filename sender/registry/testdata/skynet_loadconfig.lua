-- Loads each cluster config file named on the command line as skynet's
-- clusterd does (service/clusterd.lua, loadconfig): the file is a Lua chunk
-- run with an empty table as its environment; then every key of that table
-- starting with "__" is a cluster option, and every other key a node whose
-- value must be false or an address string (clusterd asserts it).
--
-- Prints, per file, "FILE <i> ERROR" or "FILE <i> OK <n>" and n sorted
-- lines: "READY <name hex> <address hex>", "DOWN <name hex>", and
-- "NOWAIT true" when __nowaiting is set to anything but false.
local function hex(s)
	return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
for i = 1, #arg do
	local f = assert(io.open(arg[i], "rb"))
	local source = f:read "a"
	f:close()
	local tmp = {}
	local ok = pcall(function()
		assert(load(source, "@" .. arg[i], "t", tmp))()
		for name, address in pairs(tmp) do
			assert(type(name) == "string")
			if name:sub(1, 2) ~= "__" then
				assert(address == false or type(address) == "string")
			end
		end
	end)
	if not ok then
		print("FILE", i, "ERROR")
	else
		local lines = {}
		for name, address in pairs(tmp) do
			if name:sub(1, 2) == "__" then
				if name == "__nowaiting" and address ~= false then
					lines[#lines + 1] = "NOWAIT true"
				end
			elseif address == false then
				lines[#lines + 1] = "DOWN " .. hex(name)
			else
				lines[#lines + 1] = "READY " .. hex(name) .. " " .. hex(address)
			end
		end
		table.sort(lines)
		print("FILE", i, "OK", #lines)
		for _, l in ipairs(lines) do
			print(l)
		end
	end
end
