package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func staticReg(nodes ...string) string {
	return "--registry=static:" + strings.Join(nodes, ",")
}

func TestCallPacksLuaArgumentsAndPrintsTheReply(t *testing.T) {
	db := startNode(t, "db")
	reg := staticReg("db=" + db.addr)

	r := skycall(t, reg, "call", "db", "@store", "'set'", "'player:7'", "{name='ann', hp=100, items={'sword', 'shield'}, [10]=true, 2.5}").ok(t)
	if r.stdout != "\"ok\"\n" {
		t.Fatalf("set printed %q, want \"ok\"", r.stdout)
	}
	// Several literals in one argument, as Lua writes a call's arguments.
	r = skycall(t, reg, "call", "db", "@store", "'get', 'player:7'").ok(t)
	golden(t, "call-get.lua", r.stdout)
	r = skycall(t, reg, "call", "db", "@store", "'get'", "'player:7'", "-o", "json").ok(t)
	golden(t, "call-get.json", r.stdout)

	// Every kind of value comes back as typed.
	r = skycall(t, reg, "call", "db", "@echo", "--", "nil", "true", "-42", "0x10", "1.0", "'\\0bin\\255'", "{}", "{1, 2}", "math.huge").ok(t)
	want := "nil\ntrue\n-42\n16\n1.0\n\"\\x00bin\\xff\"\n{}\n{1, 2}\nmath.huge\n"
	if r.stdout != want {
		t.Fatalf("echo printed\n%s\nwant\n%s", r.stdout, want)
	}
	r = skycall(t, reg, "call", "db", "@echo", "'\\255'", "{[true]=1, [1.5]=2}", "-o", "json").ok(t)
	var vals []any
	if err := json.Unmarshal([]byte(r.stdout), &vals); err != nil {
		t.Fatalf("-o json printed %q: %v", r.stdout, err)
	}
	if fmt.Sprint(vals) != "[map[base64:/w==] map[1.5:2 true:1]]" {
		t.Fatalf("-o json gave %v", vals)
	}
}

func TestCallRawSendsBytesFromStdinOrFile(t *testing.T) {
	db := startNode(t, "db")
	reg := staticReg("db=" + db.addr)
	payload := "\x00\x01 not packed \xff"

	r := skycallIn(t, payload, reg, "call", "db", "@echo", "--raw", "-").ok(t)
	if r.stdout != payload {
		t.Fatalf("raw reply %q, want %q", r.stdout, payload)
	}
	file := filepath.Join(t.TempDir(), "req.bin")
	if err := os.WriteFile(file, []byte(payload), 0o600); err != nil {
		t.Fatal(err)
	}
	r = skycall(t, reg, "call", "db", "@echo", "--raw", file).ok(t)
	if r.stdout != payload {
		t.Fatalf("raw reply from file %q, want %q", r.stdout, payload)
	}
	// Raw bytes that are not skynet.pack'ed cannot be printed as Lua: say
	// so, and how to see them.
	r = skycallIn(t, payload, reg, "call", "db", "@echo", "--raw", "-", "-o", "lua")
	if r.code != exitError || !strings.Contains(r.stderr, "not skynet.pack'ed") || !strings.Contains(r.stderr, "-o raw") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDeeplyNestedReplyOrArgumentIsRefusedWithAClearError: 400 KB nested
// 200,000 tables deep, what crashes a skynet node, as a reply to print and
// as an argument to parse.
func TestDeeplyNestedReplyOrArgumentIsRefusedWithAClearError(t *testing.T) {
	db := startNode(t, "db")
	reg := staticReg("db=" + db.addr)
	const k = 200000
	deep := strings.Repeat("\x0e", k) + "\x0a\x01" + strings.Repeat("\x00", k)
	for _, output := range []string{"lua", "json"} {
		r := skycallIn(t, deep, reg, "call", "db", "@echo", "--raw", "-", "-o", output)
		if r.code != exitError || !strings.Contains(r.stderr, `the reply of node "db" (400002 bytes) is not skynet.pack'ed: luaseri: tables nested deeper than 32 at offset 33; use -o raw`) {
			t.Fatalf("-o %s: exit %d, stderr %q", output, r.code, r.stderr)
		}
	}
	r := skycall(t, reg, "call", "db", "@echo", strings.Repeat("{", k)+strings.Repeat("}", k))
	if r.code != exitUsage || !strings.Contains(r.stderr, "tables nested deeper than 32 (skynet.pack's limit)") {
		t.Fatalf("deep argument: exit %d, stderr %.300q", r.code, r.stderr)
	}
}

func TestSendReturnsOnceTheNodeHasTheMessage(t *testing.T) {
	db := startNode(t, "db")
	reg := staticReg("db=" + db.addr)
	for i := range 3 {
		r := skycall(t, reg, "send", "db", "@log", fmt.Sprintf("'line', %d", i)).ok(t)
		if r.stdout != "" {
			t.Fatalf("send printed %q", r.stdout)
		}
	}
	eventually(t, "the node handled 3 pushes", func() bool { return db.loggedCount() == 3 })
	db.mu.Lock()
	defer db.mu.Unlock()
	if got := fmt.Sprint(db.logged); got != "[[line 0] [line 1] [line 2]]" {
		t.Fatalf("node logged %s", got)
	}
}

func TestQueryPrintsTheHandleUsableAsAddress(t *testing.T) {
	db := startNode(t, "db")
	reg := staticReg("db=" + db.addr)
	r := skycall(t, reg, "query", "db", "@store").ok(t)
	if r.stdout != ":00000001\n" {
		t.Fatalf("query printed %q", r.stdout)
	}
	r = skycall(t, reg, "query", "db", "echo", "-o", "json").ok(t)
	golden(t, "query.json", r.stdout)
	// The handle works as ADDR, in either spelling.
	skycall(t, reg, "call", "db", ":00000001", "'set', 'k', 1").ok(t)
	if r := skycall(t, reg, "call", "db", "1", "'get', 'k'").ok(t); r.stdout != "1\n" {
		t.Fatalf("call by handle printed %q", r.stdout)
	}
}

func TestPingReportsEveryRoundTrip(t *testing.T) {
	db := startNode(t, "db")
	r := skycall(t, staticReg("db="+db.addr), "ping", "db", "-c", "3", "-i", "1ms").ok(t)
	got := normalise(r.stdout, map[string]string{db.addr: "DB_ADDR"})
	got = rttStatsLine.ReplaceAllString(got, "rtt min/avg/max/stddev = STATS ms")
	got = strings.ReplaceAll(got, "RTTms", "") // no table here: times are "0.123 ms"
	got = pingTime.ReplaceAllString(got, "T ms")
	golden(t, "ping.txt", got)

	r = skycall(t, staticReg("db="+db.addr), "ping", "db", "-c", "2", "-i", "0", "-o", "json").ok(t)
	var res pingResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Sent != 2 || res.Answered != 2 || res.RTTMillis == nil || res.RTTMillis.Min > res.RTTMillis.Max || res.Address != db.addr {
		t.Fatalf("ping -o json: %+v", res)
	}
}

func TestBenchCountsEveryMessageAndPrintsPercentiles(t *testing.T) {
	db := startNode(t, "db")
	reg := staticReg("db=" + db.addr)

	r := skycall(t, reg, "bench", "db", "@echo", "'ping'", "--count", "500", "-c", "4").ok(t)
	for _, want := range []string{
		"Count:        500 (500 ok, 0 errors)", "Mode:         call, 4 workers",
		"Latency histogram:", "50 % in", "99.9 % in",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bench output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("no progress line expected off a terminal, got %q", r.stderr)
	}

	r = skycall(t, reg, "bench", "db", "@echo", "'ping'", "--count", "300", "-c", "3", "-o", "json").ok(t)
	var res benchResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	var inBars uint64
	for _, b := range res.Histogram {
		inBars += b.Count
	}
	l := res.Latency
	if res.Count != 300 || res.OK != 300 || inBars != 300 || l == nil ||
		!(l.Fastest <= l.P50 && l.P50 <= l.P99 && l.P99 <= l.Slowest) {
		t.Fatalf("bench -o json: %+v, latency %+v", res, l)
	}

	// Sends: every one reaches the node before bench returns.
	before := db.loggedCount()
	r = skycall(t, reg, "bench", "db", "@log", "'x'", "--count", "400", "-c", "4", "--send", "-o", "json").ok(t)
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.OK != 400 || res.Mode != "send" {
		t.Fatalf("bench --send: %+v", res)
	}
	eventually(t, "400 sends handled", func() bool { return db.loggedCount() == before+400 })

	// A duration bound stops it, with a progress line when asked for.
	r = skycall(t, reg, "bench", "db", "@echo", "1", "-d", "600ms", "--progress", "always").ok(t)
	if !strings.Contains(r.stdout, "ok, 0 errors") || !strings.Contains(r.stderr, " calls  ") || !strings.HasSuffix(r.stderr, "\r\033[K") {
		t.Fatalf("bench -d with progress: stdout\n%s\nstderr %q", r.stdout, r.stderr)
	}

	// Failures are counted and grouped, and make the exit code non-zero.
	r = skycall(t, reg, "bench", "db", "@fail", "'x'", "--count", "20", "-c", "2")
	if r.code != exitError || !strings.Contains(r.stdout, "[20] skycall: node \"db\" service @fail replied with an error: boom: x") {
		t.Fatalf("bench @fail: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestNodesTableAndJSON(t *testing.T) {
	db := startNode(t, "db")
	game := startNode(t, "game_3")
	dead := closedAddr(t)
	reg := staticReg("db="+db.addr, "game_3="+game.addr, "cache="+dead, "old=false")
	addrs := map[string]string{db.addr: "DB_ADDR", game.addr: "GAME_ADDR", dead: "DEAD_ADDR"}

	r := skycall(t, reg, "nodes", "--probe-timeout", "300ms").ok(t)
	golden(t, "nodes-static.table", normaliseTable(r.stdout, addrs))
	r = skycall(t, reg, "nodes", "-o", "json", "--probe-timeout", "300ms").ok(t)
	golden(t, "nodes-static.json", normalise(r.stdout, addrs))
	r = skycall(t, reg, "nodes", "-o", "yaml", "--probe=false").ok(t)
	golden(t, "nodes-static-noprobe.yaml", normalise(r.stdout, addrs))
}

func TestNodesFromAClusterConfigFileFollowsIt(t *testing.T) {
	db := startNode(t, "db")
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.lua")
	write := func(content string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("db = %q\nlogin = false -- maintenance\n", db.addr))
	reg := "--registry=file:" + path

	r := skycall(t, reg, "nodes").ok(t)
	golden(t, "nodes-file.table", normaliseTable(r.stdout, map[string]string{db.addr: "DB_ADDR"}))
	skycall(t, reg, "call", "db", "@store", "'set', 'k', 'v'").ok(t)
	if r := skycall(t, reg, "call", "db", "@store", "'get', 'k'").ok(t); r.stdout != "\"v\"\n" {
		t.Fatalf("call through the file registry printed %q", r.stdout)
	}
	skycall(t, reg, "send", "db", "@log", "'hi'").ok(t)
	skycall(t, reg, "query", "db", "log").ok(t)
	skycall(t, reg, "ping", "db", "-c", "1").ok(t)
	skycall(t, reg, "bench", "db", "@echo", "1", "--count", "50").ok(t)

	// --watch prints the list, then each change, until interrupted.
	ctx, cancel := contextWithTimeout(testTimeout)
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{reg, "nodes", "--watch", "--watch-interval", "50ms", "--probe-timeout", "500ms", "-o", "json"}, streams{in: strings.NewReader(""), out: &out, errOut: &errOut}, "skycall")
	}()
	eventually(t, "the first listing", func() bool { return strings.Count(out.String(), "\n") >= 2 })
	game := startNode(t, "game")
	write(fmt.Sprintf("db = %q\nlogin = %q\ngame = %q\n", db.addr, db.addr, game.addr))
	// login's address is db's: the node there answers to another name.
	eventually(t, "login and game appear", func() bool {
		s := out.String()
		return strings.Contains(s, `{"name":"login","state":"ready"`) && strings.Contains(s, `{"name":"game","state":"ready","address":"`+game.addr+`","connection":"ready"`)
	})
	eventually(t, "login's probe finds the wrong node", func() bool {
		return strings.Contains(out.String(), `"error":"skycall: `+db.addr+` answered as node \"db\", not \"login\"; the registry entry for \"login\" points at the wrong node"`)
	})
	write(fmt.Sprintf("db = %q\n", db.addr))
	eventually(t, "game disappears", func() bool { return strings.Contains(out.String(), `{"name":"game","state":"absent"}`) })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("watch exit %d: %s", code, errOut.String())
	}
}

func TestBadInputSaysWhatIsWrongAndExitsNonZero(t *testing.T) {
	db := startNode(t, "db")
	dead := closedAddr(t)
	reg := staticReg("db="+db.addr, "cache="+dead, "old=false")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown node", []string{"call", "dbx", "@store"}, exitUnknownNode, `node "dbx" is not in the static registry (known nodes: cache, db, old)`},
		{"unquoted string", []string{"call", "db", "@store", "get"}, exitUsage, `for the string write "'get'"`},
		{"malformed literal", []string{"call", "db", "@store", "{1,"}, exitUsage, "argument 1: malformed Lua literal at byte 4 of \"{1,\": unfinished table (missing '}')"},
		{"timeout", []string{"call", "db", "@slow", "--timeout", "300ms"}, exitTimeout, `call to node "db" service @slow: context deadline exceeded (the request was sent; its reply will be discarded) (waited --timeout 300ms`},
		{"node down", []string{"send", "old", "@log"}, exitNodeDown, `node "old" is marked down in the static registry`},
		{"service error", []string{"call", "db", "@fail", "'now'"}, exitRemote, `node "db" service @fail replied with an error: boom: now`},
		{"push rejected", []string{"send", "db", "@nobody", "1"}, exitRemote, `(the node rejected the message: is @nobody the name of a service there?)`},
		{"name not found", []string{"query", "db", "nobody"}, exitRemote, "name not found"},
		{"connection refused", []string{"ping", "cache", "--timeout", "300ms"}, exitConnection, "connection refused"},
		{"negative number without --", []string{"call", "db", "@echo", "-42"}, exitUsage, "needs -- before the arguments"},
		{"missing args", []string{"call", "db"}, exitUsage, "requires at least 2 arg(s)"},
		{"unknown flag", []string{"call", "db", "@x", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{"raw with args", []string{"call", "db", "@echo", "1", "--raw", "-"}, exitUsage, "give no ARGs with it"},
		{"bad output", []string{"nodes", "-o", "xml"}, exitUsage, `-o "xml": want table, json or yaml`},
		{"zero timeout", []string{"ping", "db", "--timeout", "0"}, exitUsage, "--timeout 0s: want a positive duration"},
		{"unbounded bench", []string{"bench", "db", "@echo", "-d", "0"}, exitUsage, "want a duration up to 1h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := skycall(t, append([]string{reg}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nwant it to contain %q", r.code, tc.code, r.stderr, tc.want)
			}
			if !strings.HasPrefix(r.stderr, "Error: ") {
				t.Errorf("stderr does not start with Error: %q", r.stderr)
			}
		})
	}
	for _, tc := range []struct {
		reg  string
		code int
		want string
	}{
		{"--registry=bogus", exitUsage, "want file:PATH, static:NAME=HOST:PORT"},
		{"--registry=static:db", exitUsage, `"db" is not NAME=HOST:PORT`},
		{"--registry=file:/nonexistent/cluster.lua", exitRegistry, "/nonexistent/cluster.lua"},
		{"--kubeconfig=/nonexistent/kubeconfig", exitRegistry, "no usable kubeconfig"},
	} {
		r := skycall(t, tc.reg, "nodes")
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, want %d; stderr %q", tc.reg, r.code, tc.code, r.stderr)
		}
	}
}

// TestUsageMistakesExit2WithTheHintOnStderr: every mistake in the command
// line itself, cobra's own checks included, exits with the documented usage
// code, says what is wrong and where help is on standard error, and prints
// nothing on standard output.
func TestUsageMistakesExit2WithTheHintOnStderr(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "Error: unknown command \"frobnicate\" for \"skycall\"\nSee 'skycall --help'.\n"},
		{[]string{"cal", "db", "@echo"}, "Error: unknown command \"cal\" for \"skycall\" (did you mean call?)\nSee 'skycall --help'.\n"},
		{[]string{"--bogus", "nodes"}, "Error: unknown flag: --bogus\nSee 'skycall --help'.\n"},
		{[]string{"ping", "--count"}, "Error: flag needs an argument: --count\nSee 'skycall ping --help'.\n"},
		{[]string{"ping"}, "Error: accepts 1 arg(s), received 0\nSee 'skycall ping --help'.\n"},
		{[]string{"query", "db", "a", "b"}, "Error: accepts 2 arg(s), received 3\nSee 'skycall query --help'.\n"},
		{[]string{"call", "db"}, "Error: requires at least 2 arg(s), only received 1\nSee 'skycall call --help'.\n"},
		{[]string{"help", "frobnicate"}, "Error: unknown help topic \"frobnicate\"\nSee 'skycall help --help'.\n"},
		{[]string{"completion", "tcsh"}, "Error: unknown command \"tcsh\" for \"skycall completion\"\nSee 'skycall completion --help'.\n"},
		{[]string{"completion", "bash", "extra"}, "Error: unknown command \"extra\" for \"skycall completion bash\"\nSee 'skycall completion bash --help'.\n"},
	} {
		r := skycall(t, tc.args...)
		if r.code != exitUsage || r.stderr != tc.want || r.stdout != "" {
			t.Errorf("skycall %s: exit %d, want %d\nstderr %q\nwant   %q\nstdout %.80q", strings.Join(tc.args, " "), r.code, exitUsage, r.stderr, tc.want, r.stdout)
		}
	}
	// Help asked for is not a mistake.
	for _, args := range [][]string{{}, {"help"}, {"help", "call"}, {"call", "--help"}, {"completion"}} {
		if r := skycall(t, args...); r.code != exitOK || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("skycall %s: exit %d, stderr %q, stdout %.80q; want help on stdout", strings.Join(args, " "), r.code, r.stderr, r.stdout)
		}
	}
}

func TestInterruptedCallExits130(t *testing.T) {
	db := startNode(t, "db")
	ctx, cancel := contextWithTimeout(testTimeout)
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{staticReg("db=" + db.addr), "call", "db", "@slow"}, streams{in: strings.NewReader(""), out: &out, errOut: &errOut}, "skycall")
	}()
	cancel() // Ctrl-C, whether before or after the call was written
	if code := <-done; code != exitInterrupted || !strings.Contains(errOut.String(), "context canceled") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestRegistryFromTheEnvironment(t *testing.T) {
	db := startNode(t, "db")
	t.Setenv(registryEnv, "static:db="+db.addr)
	skycall(t, "ping", "db", "-c", "1").ok(t)
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	root := newRootCommand(&globalOptions{}, "skycall")
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if c.Example == "" || c.Long == "" {
			t.Errorf("%s: no examples or long help", c.Name())
		}
	}
	r := skycall(t, "call", "--help").ok(t)
	if !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, `skycall call db @store "'get'" "'k'"`) {
		t.Fatalf("call --help:\n%s", r.stdout)
	}
	r = skycall(t, "--help").ok(t)
	if !strings.Contains(r.stdout, "Exit codes:") {
		t.Fatalf("--help lacks the exit codes:\n%s", r.stdout)
	}
}

func TestShellCompletionOffersNodeNames(t *testing.T) {
	r := skycall(t, "completion", "bash").ok(t)
	if !strings.Contains(r.stdout, "__start_skycall") {
		t.Fatalf("completion bash printed no script")
	}
	r = skycall(t, staticReg("db=127.0.0.1:1", "game_3=127.0.0.1:2"), "__complete", "call", "").ok(t)
	if !strings.HasPrefix(r.stdout, "db\ngame_3\n:4\n") {
		t.Fatalf("completion of NODE: %q", r.stdout)
	}
}

func TestNodesWatchTableKeepsItsColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.lua")
	if err := os.WriteFile(path, []byte("login = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout(testTimeout)
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--registry=file:" + path, "nodes", "-w", "--watch-interval", "50ms", "--probe=false"}, streams{in: strings.NewReader(""), out: &out, errOut: &errOut}, "skycall")
	}()
	eventually(t, "the first listing", func() bool { return strings.Count(out.String(), "\n") == 2 })
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("login = \"10.255.255.1:2528\"\nshop = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "login and shop printed again", func() bool { return strings.Count(out.String(), "\n") >= 4 })
	cancel()
	<-done
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	header := lines[0]
	for _, l := range lines[1:] {
		// Each column starts where the header's does (values here are
		// no longer than the first rows' or the header's).
		for _, col := range []string{"STATE", "ADDRESS"} {
			i := strings.Index(header, col)
			if l[i-1] != ' ' || l[i] == ' ' {
				t.Errorf("column %s misaligned:\n%s\n%s", col, header, l)
			}
		}
	}
}
