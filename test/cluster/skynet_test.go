package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/kube"
	"github.com/skycall-io/skycall/test/cluster"
)

// skynetNS is the skynet test's namespace.
const skynetNS = "skynet"

// goNodeManifest is a Go node (skycall-demo node: a server.Server with
// @echo) named gonode, in the skynet namespace, behind its ClusterNode. It
// carries the label the sample's NetworkPolicy admits to the skynet nodes.
var goNodeManifest = cluster.GoNodesManifest(skynetNS, "gonode", "gonode", 1, cluster.SkynetClientLabel) + `---
apiVersion: cluster.skycall.io/v1
kind: ClusterNode
metadata: {name: gonode, namespace: skynet}
spec:
  service: {name: gonode, port: cluster, pod: gonode-0}
`

// goCallerManifest is a Go pod that calls the skynet nodes by name once and
// exits: skycall-demo send, whose Client comes from kube.NewClient. Its
// label lets it through the sample's NetworkPolicy.
const goCallerManifest = `apiVersion: v1
kind: Pod
metadata: {name: gocaller, namespace: skynet, labels: {` + cluster.SkynetClientLabel + `}}
spec:
  restartPolicy: Never
  enableServiceLinks: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  containers:
  - name: send
    image: ` + cluster.DemoImage + `:` + cluster.ImageTag + `
    imagePullPolicy: Never
    args: ["send", "--to=sky-0,sky-1,sky-2", "--count=4", "--timeout=90s"]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
    # skycall-demo links controller-runtime's envtest (its run mode), whose
    # init makes a directory under /tmp.
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
`

// TestSkynetPodsFollowTheRegistry applies config/samples/skynet as it is
// (a StatefulSet of 3 skynet nodes with the skycall-agent sidecar, under a
// ClusterNodeSet, fenced by a NetworkPolicy) beside a Go node, and checks
// that skynet nodes call each other and the Go node by name, and that Go
// calls them: a Go pod (kube.NewClient) and this test's process (a
// skycall Client on the Kubernetes registry, which confirms each skynet
// pod's name and UID). It checks the fence (networkPolicyFence), then
// measures, over three scale-ups, the time from a new pod Ready to the
// first successful cluster.call to it from every skynet node, and counts
// what a rolling restart of the skynet StatefulSet under traffic costs each
// side. Figures are logged, not
// asserted.
func TestSkynetPodsFollowTheRegistry(t *testing.T) {
	c := sharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	j := &journey{c: c}
	// The chart's NetworkPolicy too: metrics only from the namespace
	// monitoring, which no pod here is in.
	j.namespaceWithChart(t, skynetNS, "--set", "networkPolicy.enabled=true",
		"--set-json", `networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`)
	j.kubectl(t, "apply", "-n", skynetNS, "-f", filepath.Join(c.Root, "config", "samples", "skynet"))
	j.apply(t, goNodeManifest)
	eventually(t, 3*time.Minute, "ClusterNodeSet sky 3/3 ready and ClusterNode gonode Ready", func() (bool, string) {
		ready := j.get(t, skynetNS, "clusternodeset/sky", `{.status.ready}`)
		gn := j.get(t, skynetNS, "clusternode/gonode", `{.status.conditions[?(@.type=="Ready")].status}`)
		return ready == "3" && gn == "True", fmt.Sprintf("set ready %q, gonode Ready=%q", ready, gn)
	})

	restCfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	goc := j.clientIn(t, skynetNS)
	call := func(timeout time.Duration, node, addr string, args ...any) ([]any, error) {
		cctx, ccancel := context.WithTimeout(ctx, timeout)
		defer ccancel()
		return goc.CallValues(cctx, node, addr, args...)
	}
	// What from's caller service answers when its cluster.call(to, "@echo",
	// "x") works: skynet's echo returns "x", the Go node's its name and "x".
	answered := func(to string) []any {
		if to == "gonode" {
			return []any{true, "gonode", "x"}
		}
		return []any{true, "x"}
	}
	calls := func(timeout time.Duration, from, to string) bool {
		got, err := call(timeout, from, "@caller", "call", to, "@echo", "x")
		return err == nil && reflect.DeepEqual(got, answered(to))
	}
	sky := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, "sky-"+strconv.Itoa(i))
		}
		return out
	}

	// Go calls every skynet node by name (and the Client confirms each is
	// the pod the registry names); skynet nodes call each other and the Go
	// node by name, from the config their agents pushed.
	for _, n := range sky(3) {
		if got, err := call(time.Minute, n, "@echo", "from go"); err != nil || !reflect.DeepEqual(got, []any{"from go"}) {
			t.Fatalf("Go -> %s: %#v, %v", n, got, err)
		}
	}
	for _, from := range sky(3) {
		for _, to := range append(sky(3), "gonode") {
			if to == from {
				continue
			}
			eventually(t, time.Minute, from+" calls "+to+" by name", func() (bool, string) {
				got, err := call(10*time.Second, from, "@caller", "call", to, "@echo", "x")
				return err == nil && reflect.DeepEqual(got, answered(to)), fmt.Sprintf("%#v, %v", got, err)
			})
		}
	}
	t.Logf("3 skynet nodes and gonode call each other by name")

	t.Run("NetworkPolicyAdmitsOnlyLabelledPods", j.networkPolicyFence)

	// A Go pod calls the skynet nodes by name too: skycall-demo send, a
	// skycall Client from kube.NewClient with the namespace's default
	// ServiceAccount (the chart's sender.namespaces binds skycall-sender to
	// it), alternating sends and calls to each node's @echo, in order.
	j.apply(t, goCallerManifest)
	eventually(t, 2*time.Minute, "the Go caller pod finishes", func() (bool, string) {
		phase := j.get(t, skynetNS, "pod/gocaller", `{.status.phase}`)
		return phase == "Succeeded" || phase == "Failed", "phase " + phase
	})
	out := j.kubectl(t, "logs", "-n", skynetNS, "gocaller")
	if phase := j.get(t, skynetNS, "pod/gocaller", `{.status.phase}`); phase != "Succeeded" || !strings.Contains(out, "all replies received") {
		t.Fatalf("the Go caller pod (%s) did not get every reply from the skynet nodes:\n%s", phase, out)
	}
	for _, n := range sky(3) {
		for _, i := range []int{2, 4} { // the calls; the odd numbers are sends
			if want := fmt.Sprintf("%s: call #%d replied [msg %d]", n, i, i); !strings.Contains(out, want) {
				t.Errorf("the Go caller pod's output lacks %q:\n%s", want, out)
			}
		}
	}
	t.Logf("a Go pod (kube.NewClient) called and sent to sky-0..2 by name")

	// Scale-ups: from the new pod's Ready (seen on a watch) to the first
	// successful cluster.call to it from each skynet node.
	var samples []time.Duration
	for replicas := 4; replicas <= 6; replicas++ {
		newPod := "sky-" + strconv.Itoa(replicas-1)
		readyAt := make(chan time.Time, 1)
		go func() { readyAt <- waitPodReady(ctx, t, cs, skynetNS, newPod) }()
		type hit struct {
			from string
			at   time.Time
		}
		hits := make(chan hit, replicas)
		var wg sync.WaitGroup
		for _, from := range sky(replicas - 1) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A call to a name skynet does not know yet waits in
				// clusterd until a config names it: each attempt is
				// bounded, and the one waiting when the push lands
				// returns at once.
				for ctx.Err() == nil {
					if calls(3*time.Second, from, newPod) {
						hits <- hit{from, time.Now()}
						return
					}
				}
			}()
		}
		j.kubectl(t, "scale", "statefulset/sky", "-n", skynetNS, "--replicas="+strconv.Itoa(replicas))
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			t.Fatalf("scale to %d: not every skynet node called %s within 3 minutes", replicas, newPod)
		}
		close(hits)
		ready := <-readyAt
		var line []string
		for h := range hits {
			d := h.at.Sub(ready)
			samples = append(samples, d)
			line = append(line, fmt.Sprintf("%s %v", h.from, d.Round(time.Millisecond)))
		}
		sort.Strings(line)
		t.Logf("scale to %d: %s Ready, then first successful cluster.call to it from: %s", replicas, newPod, strings.Join(line, ", "))
	}
	slices.Sort(samples)
	t.Logf("pod Ready -> callable from every skynet node, %d samples: p50 %v, p99 %v, max %v (goal p99 < 1s)",
		len(samples), percentile(samples, 50).Round(time.Millisecond), percentile(samples, 99).Round(time.Millisecond),
		samples[len(samples)-1].Round(time.Millisecond))
	j.kubectl(t, "scale", "statefulset/sky", "-n", skynetNS, "--replicas=3")
	eventually(t, 2*time.Minute, "back to 3 skynet pods", func() (bool, string) {
		n := j.get(t, skynetNS, "statefulset/sky", `{.status.replicas}`)
		return n == "3", "replicas " + n
	})

	// A rolling restart under traffic: Go -> skynet calls (skycall's side)
	// and skynet -> skynet and skynet -> Go calls, driven through each
	// node's caller service (skynet's side, through its agent's relay).
	var (
		mu       sync.Mutex
		counts   = map[string]int{}
		loadStop = make(chan struct{})
		loadWG   sync.WaitGroup
	)
	count := func(k string) {
		mu.Lock()
		counts[k]++
		mu.Unlock()
	}
	// outage tracks, per caller and target, how long calls kept failing
	// (without the relay skynet fails a call to a peer that is away at
	// once, so its failure count says more about the callers' pace than the
	// time the peer was unreachable). A run of failures spans from its first
	// failed call to its last (not to the next success, which may come
	// late because the caller itself was being replaced meanwhile).
	longest := map[string]time.Duration{}
	slowest := map[string]time.Duration{} // the longest successful call, by kind
	type run struct{ first, last time.Time }
	outage := func(kind string, r *run, ok bool) {
		if !ok {
			if r.first.IsZero() {
				r.first = time.Now()
			}
			r.last = time.Now()
			return
		}
		if !r.first.IsZero() {
			mu.Lock()
			longest[kind] = max(longest[kind], r.last.Sub(r.first))
			mu.Unlock()
			*r = run{}
		}
	}
	for i, n := range sky(3) {
		loadWG.Add(2)
		go func() { // Go -> skynet
			defer loadWG.Done()
			for k := 0; ; k++ {
				select {
				case <-loadStop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				got, err := call(20*time.Second, n, "@echo", k)
				switch {
				case err == nil && reflect.DeepEqual(got, []any{int64(k)}):
					count("go->skynet ok")
				case err != nil:
					count("go->skynet failed: " + errorKind(err))
				default:
					count("go->skynet wrong answer")
				}
			}
		}()
		go func() { // skynet -> skynet and skynet -> Go
			defer loadWG.Done()
			targets := []string{sky(3)[(i+1)%3], "gonode"}
			runs := map[string]*run{targets[0]: {}, targets[1]: {}}
			for k := 0; ; k++ {
				select {
				case <-loadStop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				to := targets[k%2]
				kind := "skynet->skynet"
				if to == "gonode" {
					kind = "skynet->go"
				}
				began := time.Now()
				got, err := call(20*time.Second, n, "@caller", "call", to, "@echo", "x")
				switch {
				case err != nil:
					count("caller unreachable (go->skynet " + errorKind(err) + ")")
				case reflect.DeepEqual(got, answered(to)):
					count(kind + " ok")
					mu.Lock()
					slowest[kind] = max(slowest[kind], time.Since(began))
					mu.Unlock()
					outage(kind, runs[to], true)
				default:
					count(kind + " failed in skynet")
					outage(kind, runs[to], false)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second) // traffic before the rollout, for a baseline
	began := time.Now()
	j.kubectl(t, "rollout", "restart", "statefulset/sky", "-n", skynetNS)
	j.kubectl(t, "rollout", "status", "statefulset/sky", "-n", skynetNS, "--timeout=5m")
	rollout := time.Since(began)
	eventually(t, time.Minute, "every skynet node calls the others again", func() (bool, string) {
		for _, from := range sky(3) {
			for _, to := range append(sky(3), "gonode") {
				if to != from && !calls(5*time.Second, from, to) {
					return false, from + " -> " + to + " fails"
				}
			}
		}
		return true, ""
	})
	close(loadStop)
	loadWG.Wait()
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var report []string
	for _, k := range keys {
		report = append(report, fmt.Sprintf("%s: %d", k, counts[k]))
	}
	for _, k := range []string{"skynet->skynet", "skynet->go"} {
		report = append(report, fmt.Sprintf("%s: longest run of failed calls from one caller to one peer, first to last failure: %v; slowest successful call %v",
			k, longest[k].Round(time.Millisecond), slowest[k].Round(time.Millisecond)))
	}
	t.Logf("rolling restart of 3 skynet pods in %v under traffic (each caller paced at one call per 20 ms):\n  %s",
		rollout.Round(100*time.Millisecond), strings.Join(report, "\n  "))
	if counts["go->skynet ok"] == 0 || counts["skynet->skynet ok"] == 0 || counts["skynet->go ok"] == 0 {
		t.Errorf("a kind of call never succeeded during the rolling restart: %v", counts)
	}
	if counts["go->skynet wrong answer"] != 0 {
		t.Errorf("Go calls got wrong answers: %v", counts)
	}
	// skynet's calls go through its agent's relay, which holds them while
	// their peer is replaced: none fails in skynet. (A call whose own
	// caller pod is replaced fails on the Go side: "caller unreachable".)
	for _, k := range []string{"skynet->skynet failed in skynet", "skynet->go failed in skynet"} {
		if counts[k] != 0 {
			t.Errorf("%d calls %s during the rolling restart, want none: the relay holds them while their peer is away", counts[k], strings.TrimSuffix(k, " in skynet"))
		}
	}
}

// namespaceWithChart creates namespace ns for a test, removed when it ends
// (after a dump of the cluster's state if it failed), and installs or
// upgrades the chart with senders in ns and helm's further args.
func (j *journey) namespaceWithChart(t *testing.T, ns string, args ...string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			j.c.DumpPods(context.Background(), &b)
			t.Logf("state of the cluster:\n%s", b.String())
		}
		_, _ = j.c.Kubectl(context.Background(), "delete", "namespace", ns, "--wait=false")
	})
	j.kubectl(t, "create", "namespace", ns)
	j.helm(t, append([]string{"upgrade", "--install", release, "charts/skycall", "-n", system, "--create-namespace",
		"--set", "image.repository=" + cluster.ManagerImage, "--set", "image.tag=" + cluster.ImageTag,
		"--set", "image.pullPolicy=Never", "--set", "sender.namespaces={" + ns + "}", "--wait", "--timeout=3m"}, args...)...)
}

// clientIn is a skycall Client on the ClusterNodes of ns, as this test's
// process sees them (the administrator's kubeconfig), closed when the test
// ends: it confirms each node's name and incarnation.
func (j *journey) clientIn(t *testing.T, ns string) *sender.Client {
	t.Helper()
	restCfg, err := clientcmd.BuildConfigFromFlags("", j.c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kube.NewRegistry(restCfg, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	goc := sender.New(reg, sender.WithBackoff(50*time.Millisecond, time.Second))
	t.Cleanup(func() { goc.Close() })
	return goc
}

// waitPodReady watches pod until its Ready condition is True and returns
// when the watch saw it.
func waitPodReady(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, pod string) time.Time {
	for ctx.Err() == nil {
		w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + pod})
		if err != nil {
			t.Logf("watching pod %s: %v; retrying", pod, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					w.Stop()
					return time.Now()
				}
			}
		}
	}
	return time.Now()
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.Is(err, sender.ErrWrongNode):
		return "wrong node"
	case errors.Is(err, sender.ErrNodeDown):
		return "node down"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
