// Package skynetpeer runs real skynet nodes (github.com/cloudwu/skynet at the
// commit PROTOCOL.md describes) on loopback, as the peer of skycall's interop
// tests and benchmarks.
//
// skynet is built once per machine by hack/skynet.sh into
// ~/.cache/skycall/skynet-<commit>/; its files never enter the repository.
// The Lua services a node runs are the caller's own (LuaPath), and the start
// service must open the cluster port the node is given: it reads
//
//	skynet.getenv "skycall_host", skynet.getenv "skycall_port"
//
// and listens there, for example with
//
//	skynet.call(skynet.uniqueservice "clusterd", "lua", "listen", host, tonumber(port))
//
// StartNode returns once that port accepts connections. Every node runs in a
// process group of its own and is stopped by its PID (Stop, Kill); Start
// (for tests) registers the stop with t.Cleanup, so no skynet process
// outlives its test, also when the test fails.
//
// Tests call Start or Require: when skynet cannot be had (no source, no
// network, no compiler) they skip saying why and how to enable it, unless
// CI=true or SKYCALL_REQUIRE_SKYNET=1 is set, in which case they fail.
// Programs (bench) call Dir and StartNode.
package skynetpeer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skycall-io/skycall/test/repo"
)

// Commit is the skynet commit hack/skynet.sh builds.
const Commit = "f19d1605b4b313c27d9931582c3153313a571492"

// ErrUnavailable: skynet cannot be had on this machine (no source, no
// network, no compiler). Tests skip on it unless skynet is required.
var ErrUnavailable = errors.New("skynet unavailable")

// HowToEnable says how to make skynet available; it ends skip messages.
const HowToEnable = "to run against a real skynet, set SKYNET_SRC to skynet-f19d1605.tar.gz " +
	"(or a checkout of github.com/cloudwu/skynet at f19d1605), or put the shared tarball at " +
	"../shared/skynet/upstream/ beside the repository, or run with a network so hack/skynet.sh can " +
	"clone it; gcc and make are needed. Set SKYCALL_REQUIRE_SKYNET=1 to make its absence a failure"

// exitUnavailable is hack/skynet.sh's exit status when it has no source or
// no compiler (as opposed to a build that failed).
const exitUnavailable = 3

var (
	dirMu  sync.Mutex
	dirVal string
	dirErr error
)

// Dir returns the directory of a built skynet: $SKYCALL_SKYNET_DIR when set,
// else the last line printed by hack/skynet.sh, which builds skynet the
// first time on a machine (about a minute, progress on standard error). The
// answer is kept for the life of the process. The error wraps
// ErrUnavailable when skynet cannot be had.
func Dir() (string, error) {
	dirMu.Lock()
	defer dirMu.Unlock()
	if dirVal != "" || dirErr != nil {
		return dirVal, dirErr
	}
	dirVal, dirErr = locate()
	return dirVal, dirErr
}

func locate() (string, error) {
	if dir := os.Getenv("SKYCALL_SKYNET_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "skynet")); err != nil {
			return "", fmt.Errorf("SKYCALL_SKYNET_DIR=%s has no skynet binary: %w", dir, err)
		}
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "skynet.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == exitUnavailable {
			return "", fmt.Errorf("%w: hack/skynet.sh: %s", ErrUnavailable, msg)
		}
		return "", fmt.Errorf("hack/skynet.sh failed (%w): %s", err, msg)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if _, err := os.Stat(filepath.Join(dir, "skynet")); err != nil {
		return "", fmt.Errorf("hack/skynet.sh printed %q, which has no skynet binary: %w", dir, err)
	}
	return dir, nil
}

// RepoRoot finds the skycall repository root: the nearest directory upward
// from the working directory whose go.mod declares the skycall module (the
// bench module's go.mod, one level down, is passed over).
func RepoRoot() (string, error) { return repo.Root() }

// Config describes one skynet node.
type Config struct {
	// Name names the node in messages and log prefixes (default "skynet").
	Name string
	// Start is the Lua service skynet starts (config key start); it is
	// looked up in LuaPath, then in skynet's own service/.
	Start string
	// LuaPath lists directories holding the caller's Lua services and
	// libraries.
	LuaPath []string
	// Cluster is the path of the cluster config (clustername.lua) that
	// clusterd loads at start and cluster.reload() re-reads. Empty: none.
	Cluster string
	// Port is the cluster port on 127.0.0.1; 0 picks a free one. Restart a
	// node on its old port by passing the Port of the Node it replaces.
	Port int
	// Threads is skynet's worker thread count (default 2).
	Threads int
	// Env holds further config keys the Lua services read with
	// skynet.getenv (strings; names must be Lua identifiers).
	Env map[string]string
	// WorkDir holds the config file and the full log (default: a new
	// temporary directory, removed by Stop).
	WorkDir string
	// Echo, when set, receives every log line as it is printed.
	Echo io.Writer
	// ListenTimeout bounds the wait for the cluster port (default 60s).
	ListenTimeout time.Duration
}

// Node is a running skynet process.
type Node struct {
	// Addr is the node's cluster address, "127.0.0.1:port".
	Addr string
	// Port is the node's cluster port.
	Port int
	// Dir is the skynet build directory the node runs from.
	Dir string
	// LogPath is the file holding everything the node printed.
	LogPath string

	cfg     Config
	cmd     *exec.Cmd
	rmWork  bool
	logFile *os.File

	mu    sync.Mutex // guards lines, err
	lines []string   // the last maxLines lines printed
	added *sync.Cond
	err   error
	done  chan struct{} // closed when the process has exited
}

// maxLines bounds the log kept in memory; LogPath has all of it.
const maxLines = 20000

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// StartNode builds skynet if needed (Dir), writes the node's config, starts
// it from the skynet directory and waits until its cluster port accepts
// connections, the process exits, or cfg.ListenTimeout passes.
func StartNode(cfg Config) (*Node, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "skynet"
	}
	if cfg.Start == "" {
		return nil, fmt.Errorf("skynet node %s: Config.Start (the Lua start service) is empty", cfg.Name)
	}
	if cfg.Threads <= 0 {
		cfg.Threads = 2
	}
	if cfg.ListenTimeout <= 0 {
		cfg.ListenTimeout = 60 * time.Second
	}
	if cfg.Port == 0 {
		if cfg.Port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("skynet node %s: %w", cfg.Name, err)
		}
	}
	n := &Node{Dir: dir, Port: cfg.Port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)), done: make(chan struct{})}
	n.added = sync.NewCond(&n.mu)
	if cfg.WorkDir == "" {
		if cfg.WorkDir, err = os.MkdirTemp("", "skycall-skynet-"); err != nil {
			return nil, err
		}
		n.rmWork = true
	}
	n.cfg = cfg
	confPath := filepath.Join(cfg.WorkDir, cfg.Name+".config")
	conf, err := n.config()
	if err != nil {
		n.cleanWork()
		return nil, err
	}
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		n.cleanWork()
		return nil, err
	}
	n.LogPath = filepath.Join(cfg.WorkDir, cfg.Name+".log")
	if n.logFile, err = os.Create(n.LogPath); err != nil {
		n.cleanWork()
		return nil, err
	}

	n.cmd = exec.Command(filepath.Join(dir, "skynet"), confPath)
	n.cmd.Dir = dir // the config's paths (./service, ./lualib) are skynet's own layout
	// Its own process group, so Stop and Kill reach whatever it runs; and
	// killed with this process, so that a test binary ended by go test's
	// -timeout (which skips cleanups) leaves no skynet behind.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		n.cleanWork()
		return nil, err
	}
	n.cmd.Stdout, n.cmd.Stderr = pw, pw
	if err := n.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		n.cleanWork()
		return nil, fmt.Errorf("start skynet node %s: %w", cfg.Name, err)
	}
	pw.Close() // the child has its own
	go n.read(pr)

	if err := n.waitListening(); err != nil {
		n.Kill()
		tail := n.Tail(30)
		n.cleanWork()
		return nil, fmt.Errorf("skynet node %s (pid %d) did not open %s: %w\nlast lines of its log:\n%s",
			cfg.Name, n.cmd.Process.Pid, n.Addr, err, tail)
	}
	return n, nil
}

// config renders skynet's config file (a Lua chunk of key = value).
func (n *Node) config() (string, error) {
	cfg := n.cfg
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "-- skynet node %s, written by skycall's test/skynetpeer\n", cfg.Name)
	fmt.Fprintf(&b, "thread = %d\nharbor = 0\nstart = %s\nbootstrap = \"snlua bootstrap\"\n", cfg.Threads, q(cfg.Start))
	paths := ""
	for _, p := range cfg.LuaPath {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(abs, ";?") {
			return "", fmt.Errorf("skynet node %s: Lua path %q contains ; or ?, which skynet's search path cannot hold", cfg.Name, abs)
		}
		paths += abs + "/?.lua;"
	}
	fmt.Fprintf(&b, "luaservice = %s\n", q(paths+"./service/?.lua"))
	// The caller's directories hold libraries too (require), before skynet's.
	fmt.Fprintf(&b, "lualoader = \"./lualib/loader.lua\"\nlua_path = %s\n", q(paths+"./lualib/?.lua;./lualib/?/init.lua"))
	fmt.Fprintf(&b, "lua_cpath = \"./luaclib/?.so\"\ncpath = \"./cservice/?.so\"\n")
	if cfg.Cluster != "" {
		abs, err := filepath.Abs(cfg.Cluster)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "cluster = %s\n", q(abs))
	}
	fmt.Fprintf(&b, "skycall_host = \"127.0.0.1\"\nskycall_port = %s\n", q(strconv.Itoa(cfg.Port)))
	for k, v := range cfg.Env {
		if !identifier.MatchString(k) {
			return "", fmt.Errorf("skynet node %s: config key %q is not a Lua identifier", cfg.Name, k)
		}
		fmt.Fprintf(&b, "%s = %s\n", k, q(v))
	}
	// skynet expands $NAME in its config from the environment: no value
	// here may contain a $ meant literally.
	if strings.Contains(b.String(), "$") {
		return "", fmt.Errorf("skynet node %s: config contains $, which skynet would expand from the environment", cfg.Name)
	}
	return b.String(), nil
}

func (n *Node) cleanWork() {
	if n.logFile != nil {
		n.logFile.Close()
	}
	if n.rmWork {
		_ = os.RemoveAll(n.cfg.WorkDir)
	}
}

func (n *Node) read(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if n.cfg.Echo != nil {
			fmt.Fprintf(n.cfg.Echo, "    %-8s| %s\n", n.cfg.Name, line)
		}
		fmt.Fprintln(n.logFile, line)
		n.mu.Lock()
		if len(n.lines) >= maxLines {
			n.lines = append(n.lines[:0], n.lines[maxLines/2:]...)
		}
		n.lines = append(n.lines, line)
		n.added.Broadcast()
		n.mu.Unlock()
	}
	// Drain anything after a too-long line, so the child never blocks.
	_, _ = io.Copy(n.logFile, r)
	err := n.cmd.Wait()
	n.mu.Lock()
	n.err = err
	n.added.Broadcast()
	n.mu.Unlock()
	close(n.done)
}

func (n *Node) waitListening() error {
	deadline := time.Now().Add(n.cfg.ListenTimeout)
	for {
		c, err := net.DialTimeout("tcp", n.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("exited: %v", n.exitErr())
		case <-time.After(50 * time.Millisecond):
		}
		if line := n.find(startFailed); line != "" {
			return fmt.Errorf("a service failed to start: %s", line)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not listening after %v: %w", n.cfg.ListenTimeout, err)
		}
	}
}

// startFailed matches skynet's log line when a service cannot be loaded or
// its start function raised an error: the node keeps running without it, so
// waiting for the port would only time out.
var startFailed = regexp.MustCompile(`lua loader error|init service failed`)

// find returns the first log line matching re, or "".
func (n *Node) find(re *regexp.Regexp) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.lines {
		if re.MatchString(l) {
			return l
		}
	}
	return ""
}

func (n *Node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// Pid is the node's process id.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Config is the node's configuration, with the port it got: StartNode(c)
// with it restarts the node on the same address.
func (n *Node) Config() Config {
	c := n.cfg
	if n.rmWork {
		c.WorkDir = ""
	}
	return c
}

// Exited is closed when the process has exited.
func (n *Node) Exited() <-chan struct{} { return n.done }

// Stop asks the node to end (SIGTERM to its process group), kills it after
// five seconds, waits for it, and removes its work directory if StartNode
// made it. Stopping a stopped node does nothing.
func (n *Node) Stop() {
	n.signal(syscall.SIGTERM, 5*time.Second)
	n.cleanWork()
}

// Kill ends the node at once (SIGKILL to its process group), as a crash
// would, and waits for it. Its log stays readable.
func (n *Node) Kill() { n.signal(syscall.SIGKILL, 0) }

func (n *Node) signal(sig syscall.Signal, grace time.Duration) {
	select {
	case <-n.done:
		return
	default:
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, sig)
	if sig != syscall.SIGKILL {
		select {
		case <-n.done:
			return
		case <-time.After(grace):
		}
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-n.done
}

// Log returns the lines the node printed (the last 20,000 at most; LogPath
// has them all).
func (n *Node) Log() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.lines...)
}

// Tail returns the last k lines printed, one string.
func (n *Node) Tail(k int) string {
	lines := n.Log()
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return strings.Join(lines, "\n")
}

// WaitLog waits for a log line matching re and returns its submatches.
func (n *Node) WaitLog(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	stop := context.AfterFunc(ctx, func() {
		n.mu.Lock()
		n.added.Broadcast()
		n.mu.Unlock()
	})
	defer stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	seen := 0
	for {
		// The in-memory log may have been halved meanwhile: rescan all.
		if seen > len(n.lines) {
			seen = 0
		}
		for ; seen < len(n.lines); seen++ {
			if m := re.FindStringSubmatch(n.lines[seen]); m != nil {
				return m, nil
			}
		}
		select {
		case <-n.done:
			return nil, fmt.Errorf("skynet node %s exited (%v) before logging a line matching %q", n.cfg.Name, n.err, re)
		default:
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("skynet node %s logged no line matching %q: %w", n.cfg.Name, re, ctx.Err())
		}
		n.added.Wait()
	}
}

// CPUTime is the CPU time (user + system) the node's process has used so
// far, from /proc/<pid>/stat (Linux).
func (n *Node) CPUTime() (time.Duration, error) {
	return ProcessCPUTime(n.Pid())
}

// ProcessCPUTime reads utime + stime of a process from /proc/<pid>/stat.
func ProcessCPUTime(pid int) (time.Duration, error) {
	u, err := ProcessUsage(pid)
	return u.CPU(), err
}

// Usage is what a process has used so far: CPU time in user space and in
// the kernel, and its read and write system calls.
type Usage struct {
	User, System          time.Duration
	ReadCalls, WriteCalls int64
}

// CPU is the CPU time in user space and in the kernel together.
func (u Usage) CPU() time.Duration { return u.User + u.System }

// Syscalls is the read and write system calls together.
func (u Usage) Syscalls() int64 { return u.ReadCalls + u.WriteCalls }

// Sub is what was used between an earlier reading, before, and u.
func (u Usage) Sub(before Usage) Usage {
	return Usage{User: u.User - before.User, System: u.System - before.System,
		ReadCalls: u.ReadCalls - before.ReadCalls, WriteCalls: u.WriteCalls - before.WriteCalls}
}

// ProcessUsage reads a process's Usage from /proc/<pid>/stat (utime,
// stime) and /proc/<pid>/io (syscr, syscw; readable by the process's owner
// and root).
func ProcessUsage(pid int) (Usage, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing one.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return Usage{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	// Fields after the name start at 3 (state); utime is 14, stime 15.
	if len(f) < 13 {
		return Usage{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return Usage{}, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	u := Usage{User: time.Duration(ut) * time.Second / clockTicks, System: time.Duration(st) * time.Second / clockTicks}
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(io)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch k {
		case "syscr":
			u.ReadCalls, err = strconv.ParseInt(v, 10, 64)
		case "syscw":
			u.WriteCalls, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			return u, fmt.Errorf("/proc/%d/io: %s: %w", pid, k, err)
		}
	}
	return u, nil
}

// clockTicks is sysconf(_SC_CLK_TCK), 100 on every Linux platform Go
// supports.
const clockTicks = 100

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
