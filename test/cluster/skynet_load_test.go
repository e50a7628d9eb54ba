package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/kube"
	"github.com/skycall-io/skycall/test/cluster"
)

// skyloadNS is the skynet load test's namespace.
const skyloadNS = "skyload"

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

    local me = os.getenv "SKYCALL_NODE" .. "/" .. os.getenv "SKYCALL_INCARNATION"
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

// TestSkynetRollingRestartUnderLoadLosesNothing runs the skynet sample
// (relay on) with the load and sink services above: every skynet node
// pushes to and calls both of its peers, at about 100 messages per second
// per pair each way, through its agent's relay, while the StatefulSet is
// rolled. From the pods' logs (streamed as they run, a replaced pod's
// included): no call fails, no push that a later successful call of the
// same stream followed is lost, and every stream arrives in order, across
// the old and the new process of its destination.
func TestSkynetRollingRestartUnderLoadLosesNothing(t *testing.T) {
	c := sharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	j := &journey{c: c}
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			c.DumpPods(context.Background(), &b)
			t.Logf("state of the cluster:\n%s", b.String())
		}
		_, _ = c.Kubectl(context.Background(), "delete", "namespace", skyloadNS, "--wait=false")
	})

	j.kubectl(t, "create", "namespace", skyloadNS)
	j.helm(t, "upgrade", "--install", release, "charts/skycall", "-n", system, "--create-namespace",
		"--set", "image.repository="+cluster.ManagerImage, "--set", "image.tag="+cluster.ImageTag,
		"--set", "image.pullPolicy=Never", "--set", "sender.namespaces={"+skyloadNS+"}", "--wait", "--timeout=3m")
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
	if _, err := c.KubectlStdin(ctx, withLoad+loadLua, "apply", "-n", skyloadNS, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"rbac.yaml", "networkpolicy.yaml", "skynet.yaml"} {
		j.kubectl(t, "apply", "-n", skyloadNS, "-f", filepath.Join(samples, f))
	}
	eventually(t, 3*time.Minute, "ClusterNodeSet sky 3/3 ready", func() (bool, string) {
		ready := j.get(t, skyloadNS, "clusternodeset/sky", `{.status.ready}`)
		return ready == "3", "ready " + ready
	})

	logs := streamSkynetLogs(ctx, t, c.Kubeconfig, filepath.Join(c.Tools, "kubectl"))
	restCfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kube.NewRegistry(restCfg, skyloadNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	goc := sender.New(reg, sender.WithBackoff(50*time.Millisecond, time.Second))
	t.Cleanup(func() { goc.Close() })
	pods := []string{"sky-0", "sky-1", "sky-2"}
	// Every pod's load runs from the moment its process is up: started again
	// on each replacement, once it answers.
	startAll := func() {
		for i, p := range pods {
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			_, _ = goc.CallValues(cctx, p, "@load", "start", 1, pods[(i+1)%3], pods[(i+2)%3])
			ccancel()
		}
	}
	startAll()
	loadBegan := time.Now()
	keepStarting := make(chan struct{})
	var starter sync.WaitGroup
	starter.Add(1)
	go func() {
		defer starter.Done()
		for {
			select {
			case <-keepStarting:
				return
			case <-time.After(500 * time.Millisecond):
				startAll()
			}
		}
	}()
	time.Sleep(3 * time.Second)
	began := time.Now()
	j.kubectl(t, "rollout", "restart", "statefulset/sky", "-n", skyloadNS)
	j.kubectl(t, "rollout", "status", "statefulset/sky", "-n", skyloadNS, "--timeout=5m")
	rollout := time.Since(began)
	time.Sleep(5 * time.Second)
	close(keepStarting)
	starter.Wait()
	for _, p := range pods {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		if _, err := goc.CallValues(cctx, p, "@load", "stop"); err != nil {
			t.Errorf("stopping %s's load: %v", p, err)
		}
		ccancel()
	}
	ended := time.Now()
	time.Sleep(3 * time.Second) // the last replies and their log lines
	// The offered load, measured before the rollout: every pod sending.
	baseline := [2]time.Time{loadBegan.Add(time.Second), began}
	rep := checkSkynetLoad(t, logs.stop(), baseline)
	secs := ended.Sub(loadBegan).Seconds()
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

func streamSkynetLogs(ctx context.Context, t *testing.T, kubeconfig, kubectl string) *podLogs {
	ctx, cancel := context.WithCancel(ctx)
	l := &podLogs{cancel: cancel}
	seen := map[string]bool{}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "pods", "-n", skyloadNS,
				"-o", `jsonpath={range .items[*]}{.metadata.name}/{.metadata.uid} {.status.phase}{"\n"}{end}`).Output()
			if err == nil {
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					id, phase, _ := strings.Cut(line, " ")
					if id == "" || seen[id] || phase == "Pending" {
						continue
					}
					seen[id] = true
					l.wg.Add(1)
					go l.follow(ctx, kubectl, kubeconfig, id)
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
func (l *podLogs) follow(ctx context.Context, kubectl, kubeconfig, id string) {
	defer l.wg.Done()
	name, _, _ := strings.Cut(id, "/")
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "logs", "-f", "--timestamps", "-n", skyloadNS, name, "-c", "skynet")
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
	baselinePushes, baselineCalls                                         float64 // per second, in the baseline window
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
		pushes  map[int]bool
		maxOK   int
		got     []logLine // in arrival order
		gotSeqs map[int]bool
	}
	streams := map[string]*stream{}
	get := func(src, dst string) *stream {
		k := src + " -> " + dst
		s := streams[k]
		if s == nil {
			s = &stream{pushes: map[int]bool{}, gotSeqs: map[int]bool{}}
			streams[k] = s
		}
		return s
	}
	var r skynetLoadReport
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
				r.calls++
				if inBaseline {
					r.baselineCalls++
				}
			}
		case "ok":
			r.ok++
			s.maxOK = max(s.maxOK, seq)
			if ms, err := strconv.Atoi(f[4]); err == nil {
				r.slowest = max(r.slowest, time.Duration(ms)*time.Millisecond)
			}
		case "fail":
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
