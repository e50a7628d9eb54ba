package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/test/cluster"
)

// loadLua and sinkLua are two Lua services added to the sample's
// application for this test. load sends, from each skynet node to each of
// its peers, a push then a call every period, numbered in one sequence per
// (process, peer), and logs each message it sent and what each call got;
// sink logs every message it receives. The logs are the record: a pod's
// in-memory state goes with it in a rollout.
const loadLua = `
  load.lua: |
    -- "start", period (centiseconds), peer...: one coroutine per peer
    -- "stop": ends them; replies how many messages were sent
    local skynet = require "skynet"
    local cluster = require "skynet.cluster"

    -- one process: the pod (its UID) and, for a restarted container, its start
    local me = os.getenv "SKYCALL_NODE" .. "/" .. os.getenv "SKYCALL_INCARNATION" .. "/" .. skynet.starttime()
    local running, sent = false, 0

    local function pump(peer, period)
    	local seq = 0
    	while running do
    		seq = seq + 1
    		cluster.send(peer, "@sink", "push", me, seq)
    		sent = sent + 1
    		skynet.error(string.format("L sent %s %s %d push", me, peer, seq))
    		seq = seq + 1
    		skynet.error(string.format("L sent %s %s %d call", me, peer, seq))
    		local t0 = skynet.hpc()
    		local ok, err = pcall(cluster.call, peer, "@sink", "call", me, seq)
    		sent = sent + 1
    		if ok then
    			skynet.error(string.format("L ok %s %s %d %d", me, peer, seq, (skynet.hpc() - t0) // 1000000))
    		else
    			skynet.error(string.format("L fail %s %s %d %s", me, peer, seq, tostring(err):gsub("%s", "_")))
    		end
    		skynet.sleep(period)
    	end
    end

    skynet.start(function()
    	skynet.dispatch("lua", function(session, _, cmd, period, ...)
    		if cmd == "start" then
    			if running then
    				return skynet.retpack(false)
    			end
    			running = true
    			for _, peer in ipairs { ... } do
    				skynet.fork(pump, peer, period)
    			end
    			skynet.retpack(true)
    		elseif cmd == "stop" then
    			running = false
    			skynet.retpack(sent)
    		end
    	end)
    end)
  sink.lua: |
    local skynet = require "skynet"
    local me = os.getenv "SKYCALL_NODE"

    skynet.start(function()
    	skynet.dispatch("lua", function(session, _, kind, src, seq)
    		skynet.error(string.format("L got %s %s %d %s", src, me, seq, kind))
    		if session ~= 0 then
    			skynet.retpack(seq)
    		end
    	end)
    end)
`

// skynetLoad is the skynet sample (relay on) with the load and sink
// services running in every pod of its StatefulSet, in namespace ns.
type skynetLoad struct {
	j     *journey
	ns    string
	logs  *podLogs
	goc   *sender.Client
	pods  []string
	began time.Time // the load's start
	ctx   context.Context
	halt  chan struct{}
	wg    sync.WaitGroup
}

// startSkynetLoad installs the chart for ns, applies the sample with the
// load and sink services, streams the pods' logs and starts the load in
// every pod, and again in every process that replaces one.
func startSkynetLoad(t *testing.T, ns string) *skynetLoad {
	c := sharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	j := &journey{c: c}
	j.namespaceWithChart(t, ns)
	samples := filepath.Join(c.Root, "config", "samples", "skynet")
	app, err := os.ReadFile(filepath.Join(samples, "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	withLoad := strings.Replace(string(app), `cluster.register("caller", skynet.newservice "caller")`,
		`cluster.register("caller", skynet.newservice "caller")
    	cluster.register("load", skynet.newservice "load")
    	cluster.register("sink", skynet.newservice "sink")`, 1)
	if withLoad == string(app) {
		t.Fatal("the sample's main.lua no longer registers caller: update this test's patch")
	}
	if _, err := c.KubectlStdin(ctx, withLoad+loadLua, "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"rbac.yaml", "networkpolicy.yaml", "skynet.yaml"} {
		j.kubectl(t, "apply", "-n", ns, "-f", filepath.Join(samples, f))
	}
	eventually(t, 3*time.Minute, "ClusterNodeSet sky 3/3 ready", func() (bool, string) {
		ready := j.get(t, ns, "clusternodeset/sky", `{.status.ready}`)
		return ready == "3", "ready " + ready
	})

	l := &skynetLoad{j: j, ns: ns, ctx: ctx, pods: []string{"sky-0", "sky-1", "sky-2"}, halt: make(chan struct{})}
	l.logs = streamSkynetLogs(ctx, ns, c.Kubeconfig, filepath.Join(c.Tools, "kubectl"))
	l.goc = j.clientIn(t, ns)
	l.startAll()
	l.began = time.Now()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.halt:
				return
			case <-time.After(500 * time.Millisecond):
				l.startAll()
			}
		}
	}()
	return l
}

// startAll starts the load in every pod's process that is not running it.
func (l *skynetLoad) startAll() {
	for i, p := range l.pods {
		cctx, ccancel := context.WithTimeout(l.ctx, 2*time.Second)
		_, _ = l.goc.CallValues(cctx, p, "@load", "start", 1, l.pods[(i+1)%3], l.pods[(i+2)%3])
		ccancel()
	}
}

// stop ends the load everywhere and returns the log lines and when the
// load ended.
func (l *skynetLoad) stop(t *testing.T) ([]logLine, time.Time) {
	t.Helper()
	close(l.halt)
	l.wg.Wait()
	for _, p := range l.pods {
		cctx, ccancel := context.WithTimeout(l.ctx, 30*time.Second)
		if _, err := l.goc.CallValues(cctx, p, "@load", "stop"); err != nil {
			t.Errorf("stopping %s's load: %v", p, err)
		}
		ccancel()
	}
	ended := time.Now()
	time.Sleep(3 * time.Second) // the last replies and their log lines
	return l.logs.stop(), ended
}

// TestSkynetRollingRestartUnderLoadLosesNothing runs the skynet sample
// (relay on) with the load and sink services above: every skynet node
// pushes to and calls both of its peers, at about 100 messages per second
// per pair each way, through its agent's relay, while the StatefulSet is
// rolled. From the pods' logs (streamed as they run, a replaced pod's
// included): no call fails, no push that a later successful call of the
// same stream followed is lost, and every stream arrives in order, across
// the old and the new process of its destination.
func TestSkynetRollingRestartUnderLoadLosesNothing(t *testing.T) {
	l := startSkynetLoad(t, "skyload")
	time.Sleep(3 * time.Second)
	began := time.Now()
	l.j.kubectl(t, "rollout", "restart", "statefulset/sky", "-n", l.ns)
	l.j.kubectl(t, "rollout", "status", "statefulset/sky", "-n", l.ns, "--timeout=5m")
	rollout := time.Since(began)
	time.Sleep(5 * time.Second)
	lines, ended := l.stop(t)
	// The offered load, measured before the rollout: every pod sending.
	rep := checkSkynetLoad(t, lines, [2]time.Time{l.began.Add(time.Second), began})
	secs := ended.Sub(l.began).Seconds()
	t.Logf("rolling restart of 3 skynet pods in %v under load: %d streams; before the rollout %.0f pushes/s and %.0f calls/s; "+
		"over the %.0f s run %d pushes and %d calls sent, %d calls ok, %d failed; %d pushes lost, %d messages reordered; "+
		"slowest call %v; %d log lines from %d processes",
		rollout.Round(100*time.Millisecond), rep.streams, rep.baselinePushes, rep.baselineCalls, secs, rep.pushes, rep.calls,
		rep.ok, rep.failed, rep.lost, rep.reordered, rep.slowest, rep.lines, rep.processes)
	if rep.baselinePushes < 300 || rep.baselineCalls < 300 {
		t.Errorf("the load before the rollout was %.0f pushes/s and %.0f calls/s, want at least 300/s of each", rep.baselinePushes, rep.baselineCalls)
	}
	if rep.failed > 0 || rep.lost > 0 || rep.reordered > 0 {
		t.Errorf("%d calls failed, %d pushes lost, %d messages reordered; want none (first problems: %v)", rep.failed, rep.lost, rep.reordered, rep.problems)
	}
}

// TestSkynetSIGKILLUnderLoadEndsEveryCallAndCountsWhatItLoses kills one
// pod's skynet process with SIGKILL from the host under the same load (no
// preStop, no drain: the kubelet restarts the container). Calls in flight
// to it then fail (skynet's "call failed"), every call ends, and the
// pushes its peers lost are at most those their relays counted
// unconfirmed; nothing is reordered.
func TestSkynetSIGKILLUnderLoadEndsEveryCallAndCountsWhatItLoses(t *testing.T) {
	l := startSkynetLoad(t, "skykill")
	time.Sleep(3 * time.Second)
	const victim = "sky-1"
	container := l.j.get(t, l.ns, "pod/"+victim, `{.status.containerStatuses[?(@.name=="skynet")].containerID}`)
	procs, err := cluster.KillContainer(container)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILLed %s's skynet: %v", victim, procs)
	eventually(t, 2*time.Minute, victim+"'s skynet restarted and the pod Ready", func() (bool, string) {
		restarts := l.j.get(t, l.ns, "pod/"+victim, `{.status.containerStatuses[?(@.name=="skynet")].restartCount}`)
		ready := l.j.get(t, l.ns, "pod/"+victim, `{.status.conditions[?(@.type=="Ready")].status}`)
		return restarts != "0" && restarts != "" && ready == "True", "restarts " + restarts + ", Ready " + ready
	})
	time.Sleep(5 * time.Second)
	unconfirmed := 0.0
	for _, p := range l.pods {
		if p == victim {
			continue
		}
		raw := l.j.kubectl(t, "get", "--raw", "/api/v1/namespaces/"+l.ns+"/pods/"+p+":9090/proxy/metrics")
		m := regexp.MustCompile(`skycall_sender_dropped_total\{node="` + victim + `",reason="unconfirmed"\} (\d+)`).FindStringSubmatch(raw)
		if m != nil {
			n, _ := strconv.ParseFloat(m[1], 64)
			unconfirmed += n
		}
	}
	lines, _ := l.stop(t)
	rep := checkSkynetLoad(t, lines, [2]time.Time{l.began.Add(time.Second), l.began.Add(3 * time.Second)})
	t.Logf("SIGKILL of %s's skynet under load: %d streams; %d pushes and %d calls sent, %d calls ok, %d failed, %d sending processes with calls that never ended; "+
		"%d pushes lost, %d counted unconfirmed by its peers' relays; %d reordered; slowest call %v; %d processes",
		victim, rep.streams, rep.pushes, rep.calls, rep.ok, rep.failed, len(rep.unended), rep.lost, int(unconfirmed), rep.reordered, rep.slowest, rep.processes)
	unended := 0
	for src, n := range rep.unended {
		if !strings.HasPrefix(src, victim+"/") {
			unended += n
		}
	}
	if unended > 0 {
		t.Errorf("%d calls never ended, issued by processes that were not killed: %v", unended, rep.unended)
	}
	if float64(rep.lost) > unconfirmed {
		t.Errorf("%d pushes lost but the relays counted %v unconfirmed: lost silently (%v)", rep.lost, unconfirmed, rep.problems)
	}
	if rep.reordered > 0 {
		t.Errorf("%d messages reordered: %v", rep.reordered, rep.problems)
	}
	if rep.slowest > relayWait+5*time.Second {
		t.Errorf("a call took %v, beyond the relay's wait of %v", rep.slowest, relayWait)
	}
}

// relayWait is skycall-agent's default --relay-wait, which the sample keeps.
const relayWait = 60 * time.Second

// podLogs streams the skynet container's log of every pod in the load
// test's namespace, each pod from its start, replaced pods included.
type podLogs struct {
	mu     sync.Mutex
	lines  []logLine
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type logLine struct {
	at   time.Time
	pod  string // name/uid: one process
	text string
}

func streamSkynetLogs(ctx context.Context, ns, kubeconfig, kubectl string) *podLogs {
	ctx, cancel := context.WithCancel(ctx)
	l := &podLogs{cancel: cancel}
	seen := map[string]bool{}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			// One process: a pod (name and UID) and its skynet container's restarts.
			out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "pods", "-n", ns, "-o",
				`jsonpath={range .items[*]}{.metadata.name}/{.metadata.uid}/{.status.containerStatuses[?(@.name=="skynet")].restartCount} {.status.containerStatuses[?(@.name=="skynet")].state.running.startedAt}{"\n"}{end}`).Output()
			if err == nil {
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					id, running, _ := strings.Cut(line, " ")
					if id == "" || seen[id] || running == "" {
						continue
					}
					seen[id] = true
					l.wg.Add(1)
					go l.follow(ctx, ns, kubectl, kubeconfig, id)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return l
}

// follow streams one pod's log until it ends (the pod is gone) or ctx does.
func (l *podLogs) follow(ctx context.Context, ns, kubectl, kubeconfig, id string) {
	defer l.wg.Done()
	name, _, _ := strings.Cut(id, "/")
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "logs", "-f", "--timestamps", "-n", ns, name, "-c", "skynet")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return
	}
	if err := cmd.Start(); err != nil {
		return
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		ts, text, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || !strings.Contains(text, " L ") {
			continue
		}
		l.mu.Lock()
		l.lines = append(l.lines, logLine{at: at, pod: id, text: text[strings.Index(text, " L ")+3:]})
		l.mu.Unlock()
	}
	_ = cmd.Wait()
}

func (l *podLogs) stop() []logLine {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines
}

type skynetLoadReport struct {
	streams, pushes, calls, ok, failed, lost, reordered, lines, processes int
	unended                                                               map[string]int // calls that never ended, by the sending process
	baselinePushes, baselineCalls                                         float64        // per second, in the baseline window
	slowest                                                               time.Duration
	problems                                                              []string
}

// checkSkynetLoad reads the load's log lines. A stream is one process's
// messages to one peer, numbered 1, 2, ... A push is lost when a call of
// its stream issued after it succeeded, yet no process of the destination
// logged it; a message is reordered when a destination logged it after a
// later one of its stream.
// baseline is a window whose send rates are reported.
func checkSkynetLoad(t *testing.T, lines []logLine, baseline [2]time.Time) skynetLoadReport {
	t.Helper()
	type stream struct {
		src     string
		pushes  map[int]bool
		calls   map[int]bool // sent and not ended
		maxOK   int
		got     []logLine // in arrival order
		gotSeqs map[int]bool
	}
	streams := map[string]*stream{}
	get := func(src, dst string) *stream {
		k := src + " -> " + dst
		s := streams[k]
		if s == nil {
			s = &stream{src: src, pushes: map[int]bool{}, calls: map[int]bool{}, gotSeqs: map[int]bool{}}
			streams[k] = s
		}
		return s
	}
	r := skynetLoadReport{unended: map[string]int{}}
	processes := map[string]bool{}
	slices.SortStableFunc(lines, func(a, b logLine) int { return a.at.Compare(b.at) })
	for _, ln := range lines {
		processes[ln.pod] = true
		f := strings.Fields(ln.text)
		if len(f) < 5 {
			continue
		}
		seq, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		r.lines++
		s := get(f[1], f[2])
		switch f[0] {
		case "sent":
			inBaseline := ln.at.After(baseline[0]) && ln.at.Before(baseline[1])
			if f[4] == "push" {
				s.pushes[seq] = true
				r.pushes++
				if inBaseline {
					r.baselinePushes++
				}
			} else {
				s.calls[seq] = true
				r.calls++
				if inBaseline {
					r.baselineCalls++
				}
			}
		case "ok":
			delete(s.calls, seq)
			r.ok++
			s.maxOK = max(s.maxOK, seq)
			if ms, err := strconv.Atoi(f[4]); err == nil {
				r.slowest = max(r.slowest, time.Duration(ms)*time.Millisecond)
			}
		case "fail":
			delete(s.calls, seq)
			r.failed++
			r.problems = append(r.problems, "call failed: "+ln.text)
		case "got":
			ln.text = strconv.Itoa(seq)
			s.got = append(s.got, ln)
			s.gotSeqs[seq] = true
		}
	}
	r.processes = len(processes)
	if w := baseline[1].Sub(baseline[0]).Seconds(); w > 0 {
		r.baselinePushes /= w
		r.baselineCalls /= w
	}
	keys := make([]string, 0, len(streams))
	for k := range streams {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := streams[k]
		if len(s.calls) > 0 {
			r.unended[s.src] += len(s.calls)
		}
		if len(s.pushes) == 0 {
			continue
		}
		r.streams++
		for seq := range s.pushes {
			if seq < s.maxOK && !s.gotSeqs[seq] {
				r.lost++
				if len(r.problems) < 10 {
					r.problems = append(r.problems, fmt.Sprintf("%s: push %d lost (call %d after it succeeded)", k, seq, s.maxOK))
				}
			}
		}
		last := 0
		for _, g := range s.got {
			seq, _ := strconv.Atoi(g.text)
			if seq < last {
				r.reordered++
				if len(r.problems) < 10 {
					r.problems = append(r.problems, fmt.Sprintf("%s: %d arrived at %s after %d", k, seq, g.pod, last))
				}
			}
			last = max(last, seq)
		}
	}
	return r
}
