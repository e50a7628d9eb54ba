-- skycall: keeps this skynet node's cluster config current, by push (from
-- skycall-agent or any skycall Client) or by polling a mounted
-- clustername.lua, and answers skycall's node confirmation. See README.md.
--
-- Only the pod's own agent may change the config: "reload" and "status"
-- carry a token the agent writes to a file inside the pod (skycall_token_file);
-- anyone else, over the cluster or inside the node, is refused and logged.
--
-- Started by the node's bootstrap with one line:
--
--	skynet.uniqueservice "skycall"
--
-- It reads these keys of the skynet config (skynet.getenv), each falling
-- back to an environment variable:
--
--	skycall_node         SKYCALL_NODE          this node's cluster name (needed
--	                                           for the node confirmation)
--	skycall_incarnation  SKYCALL_INCARNATION   this process's identity (a pod's
--	                                           UID); default: made up at start
--	skycall_name         SKYCALL_NAME          the name it registers for pushes
--	                                           (default "skycall": @skycall)
--	skycall_poll         SKYCALL_POLL          a clustername.lua to poll instead
--	                                           of (or besides) pushes
--	skycall_poll_interval SKYCALL_POLL_INTERVAL seconds between polls (default 1)
--	skycall_token_file   SKYCALL_TOKEN_FILE    the file holding the agent's token;
--	                                           without it pushes are refused
--
-- Commands (skynet "lua" protocol, also over the cluster as @skycall):
--
--	"reload", config, meta     meta = {token=, generation=, hash=}: check
--	                           the token, then that generation (an integer
--	                           >= 1) is not below the one in force and hash is
--	                           a string, then validate config (the table
--	                           skynet's cluster config file makes) and apply
--	                           it with cluster.reload. Replies true,
--	                           generation; or false, reason (the previous
--	                           config stays in force).
--	"status", {token=}         replies a table: node, incarnation,
--	                           generation, hash, source, applied, refused,
--	                           unauthorized, last_error; or false, reason
--
-- Nothing here raises to the caller or stops the node: a bad config, an
-- unreadable file or an unknown command is an answer and a skynet.error line.
local skynet = require "skynet"
local cluster = require "skynet.cluster"
local queue = require "skynet.queue"

local function setting(key, env, default)
	local v = skynet.getenv(key)
	if v == nil or v == "" then
		v = os.getenv(env)
	end
	if v == nil or v == "" then
		return default
	end
	return v
end

local function log(fmt, ...)
	skynet.error("skycall: " .. string.format(fmt, ...))
end

-- Validation ------------------------------------------------------------

-- The rules below are sender/clusterconfig's (CheckNodeName, CheckAddress,
-- Keywords); test/skynetagent holds both to one corpus of names and
-- addresses. Patterns spell out ASCII ranges: %w would follow the C locale.

-- Names skynet's cluster config file cannot hold as a node (they mean the
-- table itself, a keyword, or an option).
local reserved = {}
for w in string.gmatch("and break do else elseif end false for function global goto if in local nil not " ..
	"or repeat return then true until while _ENV _G", "%S+") do
	reserved[w] = true
end

local MAX_NODE_NAME = 63
local MAX_HOST = 253

-- The options skynet's clusterd reads (config.<name> from __<name>) and the
-- type each must have. Any other __ key is refused: it would only be stored,
-- and a typo (__nowating) would silently mean nothing.
local options = { nowaiting = "boolean" }

local MAX_NODES = 65536

-- ipv4 returns the four octets of s, or nil: no leading zeros, each 0 to 255.
local function ipv4(s)
	local p = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
	if #p ~= 4 then
		return nil
	end
	for i, part in ipairs(p) do
		if #part > 3 or (#part > 1 and part:sub(1, 1) == "0") or tonumber(part) > 255 then
			return nil
		end
		p[i] = tonumber(part)
	end
	return p
end

-- ipv6_fields reads the ':'-separated fields of part into out (an IPv4
-- address last, as two fields, when v4 allows it); false when malformed.
local function ipv6_fields(part, v4, out)
	if part == "" then
		return true
	end
	local items = {}
	for f in (part .. ":"):gmatch("([^:]*):") do
		items[#items + 1] = f
	end
	for i, f in ipairs(items) do
		if v4 and i == #items and f:find(".", 1, true) then
			local o = ipv4(f)
			if not o then
				return false
			end
			out[#out + 1] = o[1] * 256 + o[2]
			out[#out + 1] = o[3] * 256 + o[4]
		elseif f:match("^[0-9A-Fa-f][0-9A-Fa-f]?[0-9A-Fa-f]?[0-9A-Fa-f]?$") then
			out[#out + 1] = tonumber(f, 16)
		else
			return false
		end
	end
	return true
end

-- ipv6 says whether s is an IPv6 address as Go's netip.ParseAddr reads one
-- (no zone), and not IPv4-mapped (::ffff:a.b.c.d), which Kubernetes refuses.
local function ipv6(s)
	local head, tail, fields = s, nil, {}
	local a, b = s:find("::", 1, true)
	if a then
		head, tail = s:sub(1, a - 1), s:sub(b + 1)
	end
	if not ipv6_fields(head, tail == nil, fields) then
		return false
	end
	local n = #fields
	if tail then
		if not ipv6_fields(tail, true, fields) or #fields > 7 then
			return false -- :: stands for at least one field of zeros
		end
		for _ = 1, 8 - #fields do
			table.insert(fields, n + 1, 0)
		end
	end
	if #fields ~= 8 then
		return false
	end
	local mapped = fields[6] == 0xffff
	for i = 1, 5 do
		mapped = mapped and fields[i] == 0
	end
	return not mapped
end

local function check_host(host)
	if #host > MAX_HOST then
		return string.format("host longer than %d bytes", MAX_HOST)
	end
	if host:sub(1, 1) == "[" then
		if host:sub(-1) ~= "]" or not ipv6(host:sub(2, -2)) then
			return "invalid IPv6 address " .. host
		end
		return nil
	end
	if host:match("^%d+%.%d+%.%d+%.%d+$") then
		if not ipv4(host) then
			return "invalid IPv4 address " .. host
		end
		return nil
	end
	for label in (host .. "."):gmatch("([^.]*)%.") do
		if not label:match("^[A-Za-z0-9]$") and not label:match("^[A-Za-z0-9][A-Za-z0-9%-]*[A-Za-z0-9]$") or #label > 63 then
			return string.format("host %q is not an IPv4 address, a DNS name or [IPv6]", host)
		end
	end
	return nil
end

-- check_address is clusterconfig.CheckAddress: host:port, port 1 to 65535.
local function check_address(addr)
	local host, port = addr:match("^(.+):([0-9]+)$")
	if not host then
		return string.format("address %q is not host:port", addr)
	end
	local p = tonumber(port)
	if #port > 5 or p < 1 or p > 65535 then
		return string.format("address %q has an invalid port (want 1 to 65535)", addr)
	end
	local err = check_host(host)
	if err then
		return string.format("address %q: %s", addr, err)
	end
	return nil
end

-- check_name is clusterconfig.CheckNodeName.
local function check_name(name)
	if #name == 0 or #name > MAX_NODE_NAME then
		return string.format("node name %q must be 1 to %d bytes", name, MAX_NODE_NAME)
	end
	if reserved[name] or name:sub(1, 2) == "__" then
		return string.format("node name %q is reserved (a Lua keyword, _ENV, _G, or __ as of a cluster option)", name)
	end
	if not name:match("^[A-Za-z_][A-Za-z0-9_.%-]*$") then
		return string.format("node name %q has characters other than letters, digits, _ . - (or starts with a digit, . or -)", name)
	end
	return nil
end

-- validate returns nil, or the first reason config cannot be applied. It
-- checks everything before anything is applied: all or nothing.
local function validate(config)
	if type(config) ~= "table" then
		return "config is a " .. type(config) .. ", want a table of node = \"host:port\" or false"
	end
	local n = 0
	for k, v in pairs(config) do
		n = n + 1
		if n > MAX_NODES then
			return string.format("config has more than %d entries", MAX_NODES)
		end
		if type(k) ~= "string" then
			return string.format("key %s is a %s, want a node name (string)", tostring(k), type(k))
		end
		if k:sub(1, 2) == "__" then
			local want = options[k:sub(3)]
			if not want then
				return string.format("unknown cluster option %q (skynet reads only __nowaiting)", k)
			end
			if type(v) ~= want then
				return string.format("cluster option %s is a %s, want a %s", k, type(v), want)
			end
		else
			local err = check_name(k)
			if err then
				return err
			end
			if v == false then
				-- down: callers fail at once
			elseif type(v) == "string" then
				err = check_address(v)
				if err then
					return string.format("node %q: %s", k, err)
				end
			else
				return string.format("node %q: value is a %s, want \"host:port\" or false", k, type(v))
			end
		end
	end
	return nil
end

-- State -----------------------------------------------------------------

local node = setting("skycall_node", "SKYCALL_NODE")
local incarnation = setting("skycall_incarnation", "SKYCALL_INCARNATION")
local regname = setting("skycall_name", "SKYCALL_NAME", "skycall")
local pollpath = setting("skycall_poll", "SKYCALL_POLL")
local pollinterval = tonumber(setting("skycall_poll_interval", "SKYCALL_POLL_INTERVAL", "1")) or 1
local tokenpath = setting("skycall_token_file", "SKYCALL_TOKEN_FILE")

local state = {
	generation = 0,  -- meta.generation of the config in force (0: none applied)
	hash = "",       -- meta.hash of the config in force
	source = "",     -- "push" or the polled file
	applied = 0,     -- configs applied
	refused = 0,     -- configs refused
	unauthorized = 0, -- commands refused for a missing or wrong token
	last_error = "", -- why the last refused config was refused
}
local current = {} -- node name -> address or false, as last applied

-- One apply at a time: cluster.reload yields, and a push and a poll
-- interleaved would each compute the nodes to set down from a stale current.
local critical = queue()

-- check_generation returns nil when a pushed config may replace the one in
-- force, "current" when it is the one in force (same generation and hash),
-- or why not: a generation below the one in force is an older config, and
-- applying it would undo a newer one.
local function check_generation(meta)
	local gen = meta.generation
	if math.type(gen) ~= "integer" or gen < 1 then
		return string.format("meta.generation is %s, want an integer >= 1", type(gen) == "number" and tostring(gen) or "a " .. type(gen))
	end
	if type(meta.hash) ~= "string" or meta.hash == "" then
		return "meta.hash is a " .. type(meta.hash) .. ", want a non-empty string"
	end
	if gen < state.generation then
		return string.format("generation %d is older than generation %d in force", gen, state.generation)
	end
	if gen == state.generation then
		if meta.hash == state.hash then
			return "current"
		end
		return string.format("generation %d is in force with another hash", gen)
	end
	return nil
end

-- Authentication ----------------------------------------------------------

-- MIN_TOKEN is the shortest token accepted: the agent writes 64 hex digits.
local MIN_TOKEN = 32

-- read_token returns the token the pod's agent wrote, or nil and why not.
-- It is read on every command, so a rotated token takes effect at once.
local function read_token()
	if not tokenpath then
		return nil, "pushes are off: skycall_token_file (SKYCALL_TOKEN_FILE) is not set"
	end
	local f, err = io.open(tokenpath, "rb")
	if not f then
		return nil, "cannot read the agent's token: " .. tostring(err)
	end
	local token = f:read(1024) or ""
	f:close()
	token = token:match("^%s*(.-)%s*$")
	if #token < MIN_TOKEN then
		return nil, string.format("the agent's token in %s is shorter than %d bytes", tokenpath, MIN_TOKEN)
	end
	return token
end

-- same compares two strings in time that depends only on their lengths.
local function same(a, b)
	if #a ~= #b then
		return false
	end
	local d = 0
	for i = 1, #a do
		d = d | (a:byte(i) ~ b:byte(i))
	end
	return d == 0
end

local lastlogged = 0 -- skynet.now() of the last refusal logged

-- authorize returns nil when auth carries the agent's token, else why not.
-- A refusal is counted, and logged at most once a second with the count,
-- so a peer flooding refusals cannot flood the log.
local function authorize(cmd, auth, source)
	local want, err = read_token()
	if want then
		local got = type(auth) == "table" and auth.token
		if type(got) == "string" and same(got, want) then
			return nil
		end
		err = "the token is missing or wrong"
	end
	state.unauthorized = state.unauthorized + 1
	local now = skynet.now()
	if now - lastlogged >= 100 or lastlogged == 0 then
		lastlogged = now
		log("refused %q from %s: only this pod's skycall-agent may %s (%s; %d refused so far)",
			cmd, skynet.address(source), cmd == "status" and "ask" or "change the config", err, state.unauthorized)
	end
	return "skycall: " .. cmd .. " refused: only this pod's skycall-agent may send it (" .. err .. ")"
end

-- apply validates config and hands it to clusterd. A node in force before
-- and missing now is set to false (down): clusterd cannot forget an
-- address, and the process behind a stale one may be gone, or be another
-- node by now, so its callers must fail rather than reach it.
local function apply(config, meta, source)
	local err
	if meta then
		err = check_generation(meta)
		if err == "current" then
			return true, state.generation
		end
	end
	err = err or validate(config)
	if err then
		state.refused = state.refused + 1
		state.last_error = err
		log("refused the cluster config from %s, the previous one stays in force: %s", source, err)
		return false, err
	end
	local full = {}
	for k, v in pairs(current) do
		if config[k] == nil then
			full[k] = false
		end
	end
	local nodes = {}
	for k, v in pairs(config) do
		full[k] = v
		if k:sub(1, 2) ~= "__" then
			nodes[k] = v
		end
	end
	local ok, rerr = pcall(cluster.reload, full)
	if not ok then
		state.refused = state.refused + 1
		state.last_error = "cluster.reload failed: " .. tostring(rerr)
		log("cluster.reload of the config from %s failed: %s", source, tostring(rerr))
		return false, state.last_error
	end
	current = nodes
	state.applied = state.applied + 1
	state.generation = meta and meta.generation or state.generation + 1
	state.hash = meta and meta.hash or ""
	state.source = source
	state.last_error = ""
	local count = 0
	for _ in pairs(nodes) do
		count = count + 1
	end
	log("applied cluster config generation %d from %s (%d nodes)", state.generation, source, count)
	return true, state.generation
end

-- Poll mode ---------------------------------------------------------------

local MAX_FILE = 4 << 20

local function load_file(path)
	local f, err = io.open(path, "rb")
	if not f then
		return nil, err
	end
	local source = f:read(MAX_FILE + 1)
	f:close()
	source = source or ""
	if #source > MAX_FILE then
		return nil, string.format("%s is larger than %d bytes", path, MAX_FILE)
	end
	return source
end

-- parse reads a clustername.lua the way clusterd does: a chunk run with an
-- empty table as its environment; the table it fills is the config.
local function parse(source, path)
	local env = {}
	local chunk, err = load(source, "@" .. path, "t", env)
	if not chunk then
		return nil, err
	end
	local ok, rerr = pcall(chunk)
	if not ok then
		return nil, tostring(rerr)
	end
	return env
end

local function poll()
	local seen -- the content last acted on, good or bad
	local failing -- the last read error logged
	while true do
		local source, err = load_file(pollpath)
		if not source then
			if err ~= failing then
				log("cannot read %s, the config in force stays: %s", pollpath, tostring(err))
				failing = err
			end
		elseif source ~= seen then
			failing = nil
			seen = source
			local config, perr = parse(source, pollpath)
			if config then
				critical(apply, config, nil, pollpath)
			else
				state.refused = state.refused + 1
				state.last_error = perr
				log("refused %s, the previous config stays in force: %s", pollpath, perr)
			end
		end
		skynet.sleep(math.max(1, math.floor(pollinterval * 100)))
	end
end

-- Commands ----------------------------------------------------------------

local command = {}

function command.reload(source, config, meta)
	if type(meta) ~= "table" then
		return false, authorize("reload", nil, source)
	end
	local err = authorize("reload", meta, source)
	if err then
		return false, err
	end
	return critical(apply, config, meta, "push")
end

function command.status(source, auth)
	local err = authorize("status", auth, source)
	if err then
		return false, err
	end
	return {
		node = node or "",
		incarnation = incarnation,
		generation = state.generation,
		hash = state.hash,
		source = state.source,
		applied = state.applied,
		refused = state.refused,
		unauthorized = state.unauthorized,
		last_error = state.last_error,
	}
end

skynet.start(function()
	if not incarnation then
		-- A skynet process restarted under the same name must not pass
		-- for the one before: start time plus a random part.
		math.randomseed(os.time(), skynet.self())
		incarnation = string.format("skynet-%d-%08x", skynet.starttime(), math.random(0, 0x7fffffff))
	end
	skynet.dispatch("lua", function(session, source, cmd, ...)
		local f = command[cmd]
		local res
		if f then
			res = table.pack(pcall(f, source, ...))
			if not res[1] then
				log("command %s failed: %s", tostring(cmd), tostring(res[2]))
				res = { n = 3, true, false, "skycall: " .. tostring(cmd) .. " failed: " .. tostring(res[2]) }
			end
		else
			res = { n = 3, true, false, "skycall: unknown command " .. tostring(cmd) .. " (want reload or status)" }
		end
		if session ~= 0 then
			skynet.retpack(table.unpack(res, 2, res.n))
		end
	end)
	local ok, err = pcall(cluster.register, regname)
	if not ok then
		log("cannot register @%s (is another service using the name?): %s", regname, tostring(err))
	end
	if node then
		local confirm = skynet.newservice("skycall_confirm", node, incarnation)
		ok, err = pcall(cluster.register, "__skycall_node", confirm)
		if not ok then
			log("cannot register the node confirmation: %s", tostring(err))
		end
	else
		log("skycall_node (or SKYCALL_NODE) is not set: skycall clients check this node by address only")
	end
	log("ready as @%s, node %s, incarnation %s%s%s", regname, tostring(node), incarnation,
		pollpath and (", polling " .. pollpath .. " every " .. pollinterval .. "s") or "",
		tokenpath and (", pushes from the holder of " .. tokenpath) or ", pushes off (no skycall_token_file)")
	if pollpath then
		skynet.fork(poll)
	end
end)
