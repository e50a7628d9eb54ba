package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/test/cluster"
	"github.com/skycall-io/skycall/test/localcp"
)

const (
	system  = "skycall-system"
	game    = cluster.Namespace
	release = "skycall"
	manager = "skycall-manager"
	lease   = "skycall-manager.cluster.skycall.io"
)

// needCluster skips the test, saying why and how to enable it, when the
// cluster cannot run here; where it must run (CI) it fails instead.
func needCluster(t *testing.T) {
	t.Helper()
	root, err := localcp.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mandatory := cluster.Mandatory()
	if why := cluster.Unavailable(root, mandatory); why != "" {
		if mandatory {
			t.Fatalf("the cluster tests are mandatory here (CI=true or SKYCALL_REQUIRE_CLUSTER=1), but %s", why)
		}
		t.Skipf("skipping the real-cluster tests: %s (set SKYCALL_REQUIRE_CLUSTER=1 to make this a failure)", why)
	}
}

// shared is the one cluster the package's tests share, brought up by the
// first that needs it and torn down by TestMain: a start costs minutes.
var shared struct {
	c   *cluster.Cluster
	err error
}

// sharedCluster is the package's cluster, brought up on first use; it
// skips or fails as needCluster says when the cluster cannot run here.
func sharedCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	needCluster(t)
	if shared.c == nil && shared.err == nil {
		began := time.Now()
		// The progress is logged once Up returns and not later, as the
		// cluster outlives this test (the tear-down's error carries its own).
		var progress strings.Builder
		shared.c, shared.err = cluster.Up(context.Background(), testWriter{nil, &progress})
		t.Log(progress.String())
		if shared.err == nil {
			shared.c.Progress = testWriter{nil, io.Discard}
			t.Logf("cluster up with images in %v", time.Since(began).Round(time.Second))
		}
	}
	if shared.err != nil {
		t.Fatalf("bringing the cluster up: %v", shared.err)
	}
	return shared.c
}

// TestMain tears the shared cluster down after every test, and fails the
// run when anything of it is left behind on the machine.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		down := time.Now()
		if err := shared.c.Down(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: tearing the cluster down: %v\n", err)
			code = 1
		} else {
			fmt.Fprintf(os.Stderr, "cluster down and nothing left behind in %v\n", time.Since(down).Round(time.Second))
		}
	}
	os.Exit(code)
}

// TestFailedStartShowsTheLogAndLeavesNothingBehind: when a component does
// not come up in time, hack/cluster.sh prints that component's log tail and
// tears down everything it had started.
func TestFailedStartShowsTheLogAndLeavesNothingBehind(t *testing.T) {
	needCluster(t)
	// Deadlines at 1%: the API server gets about a second, far too little.
	t.Setenv("SKYCALL_CLUSTER_WAIT_PERCENT", "1")
	c, err := cluster.Up(context.Background(), testWriter{t, nil})
	if err == nil {
		_ = c.Down(context.Background())
		t.Fatal("the cluster came up with every deadline at 1%; expected a failed start")
	}
	msg := err.Error()
	for _, want := range []string{"the last lines of", "bringing the cluster up failed; tearing down", "torn down"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failed start's output lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "left behind") {
		t.Errorf("the failed start left things behind:\n%s", msg)
	}
}

// TestUserJourneyOnARealCluster is skycall as a user meets it on a real
// cluster: the chart installed with Helm, the operator running as a pod, Go
// nodes as a StatefulSet, a sender pod calling them by name while one of
// them is replaced, then helm upgrade and uninstall. Each step needs the one
// before; the first that fails prints every pod's logs and stops the rest.
func TestUserJourneyOnARealCluster(t *testing.T) {
	ctx := context.Background()
	began := time.Now()
	c := sharedCluster(t)

	j := &journey{c: c}
	for _, step := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"HelmInstallRunsTheOperatorAsAPodWithItsServiceAccount", j.helmInstall},
		{"HelmTestFindsTheCRDEstablishedAndTheMetricsServedToItsReader", j.helmTest},
		{"ClusterNodesOfStatefulSetPodsGoReadyWithPodIPs", j.nodesReady},
		{"SenderPodWithOnlyTheSenderRoleCallsBothNodesByName", j.senderCallsBoth},
		{"MessagesQueueWhileANodePodIsReplacedAndArriveInOrder", j.podReplaced},
		{"HelmUpgradeToTwoReplicasElectsOneLeader", j.helmUpgrade},
		{"HelmUninstallRemovesTheOperatorAndKeepsClusterNodes", j.helmUninstall},
	} {
		if !t.Run(step.name, step.run) {
			var b strings.Builder
			c.DumpPods(ctx, &b)
			t.Logf("state of the cluster after %s failed:\n%s", step.name, b.String())
			t.FailNow()
		}
	}
	t.Logf("journey done in %v", time.Since(began).Round(time.Second))
}

type journey struct {
	c *cluster.Cluster
	// managerPod is the operator pod helm install started.
	managerPod string
	// next is the number of the next message the sender issues.
	next int
}

func (j *journey) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := j.c.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (j *journey) apply(t *testing.T, manifest string) {
	t.Helper()
	if _, err := j.c.KubectlStdin(context.Background(), manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

func (j *journey) helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := j.c.Helm(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// uninstallChart removes the release that the journey and the load tests
// install, if one of them left it: the tests that need a cluster without
// skycall's roles (or follow the README from nothing) start with it.
func (j *journey) uninstallChart(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := j.c.Helm(ctx, "uninstall", release, "-n", system, "--ignore-not-found", "--wait"); err != nil {
		t.Fatalf("removing the release earlier tests left: %v", err)
	}
}

// get reads one jsonpath of one object, "" when it does not exist.
func (j *journey) get(t *testing.T, ns, obj, jsonpath string) string {
	t.Helper()
	out, err := j.c.Kubectl(context.Background(), "get", "-n", ns, obj, "--ignore-not-found", "-o", "jsonpath="+jsonpath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// eventually polls cond until it holds or timeout passes; cond says what it
// saw, for the failure message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last saw: %s", what, timeout, saw)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (j *journey) helmInstall(t *testing.T) {
	j.kubectl(t, "create", "namespace", game)
	j.helm(t, "install", release, "charts/skycall", "-n", system, "--create-namespace",
		"--set", "image.repository="+cluster.ManagerImage, "--set", "image.tag="+cluster.ImageTag,
		"--set", "image.pullPolicy=Never", "--set", "leaderElection.enabled=true",
		"--set", "sender.namespaces={"+game+"}", "--wait", "--timeout=3m")

	pod := j.get(t, system, "pods", `{.items[0].metadata.name}`)
	j.managerPod = pod
	if sa := j.get(t, system, "pod/"+pod, `{.spec.serviceAccountName}`); sa != manager {
		t.Errorf("operator pod %s runs as ServiceAccount %q, want the chart's %q", pod, sa, manager)
	}
	if ready := j.get(t, system, "pod/"+pod, `{.status.conditions[?(@.type=="Ready")].status}`); ready != "True" {
		t.Errorf("operator pod %s Ready=%q after helm install --wait", pod, ready)
	}
	// Leader election reaches the API from inside the pod: through the
	// `kubernetes` Service, with the pod's own in-cluster configuration.
	eventually(t, 60*time.Second, "the operator pod holds the leader election Lease", func() (bool, string) {
		holder := j.get(t, system, "lease/"+lease, `{.spec.holderIdentity}`)
		return strings.HasPrefix(holder, pod+"_"), "holder " + holder
	})
	// Probes pass: Ready, and the liveness probe (first after 15 s) has not
	// restarted it.
	if args := j.get(t, system, "deployment/"+manager, `{.spec.template.spec.containers[0].args}`); !strings.Contains(args, "--leader-elect") {
		t.Errorf("the chart's manager args lack --leader-elect: %s", args)
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if p := j.get(t, system, "pod/"+pod, `{.spec.containers[0].`+probe+`.httpGet.path}`); p == "" {
			t.Errorf("operator pod has no %s", probe)
		}
	}
	if env := j.get(t, system, "pod/"+pod, `{.spec.containers[0].env}`); env != "" {
		t.Errorf("operator pod has extra environment %s; it should need none", env)
	}
}

// helmTest runs `helm test`: the chart's test pod (the manager image's
// `manager check`) waits for the CRD and scrapes the metrics Service over
// HTTPS with a ServiceAccount bound to the metrics-reader ClusterRole.
func (j *journey) helmTest(t *testing.T) {
	// The pod is deleted once it succeeds (nothing left for helm
	// uninstall to miss), so its logs are not read: it exits non-zero
	// unless both checks pass, and then helm test fails with its state.
	out := j.helm(t, "test", release, "-n", system, "--timeout=3m")
	if !strings.Contains(out, "skycall-test") || !strings.Contains(out, "Succeeded") {
		t.Errorf("helm test did not report the test pod succeeded:\n%s", out)
	}
}

// podIP is a Running pod's IP, "" otherwise.
func (j *journey) podIP(t *testing.T, ns, pod string) string {
	return j.get(t, ns, "pod/"+pod, `{.status.podIP}`)
}

// nodeReadyAt waits until ClusterNode name is Ready at pod's IP, as the
// real EndpointSlice controller publishes it.
func (j *journey) nodeReadyAt(t *testing.T, name, pod string, timeout time.Duration) string {
	t.Helper()
	var addr string
	eventually(t, timeout, fmt.Sprintf("ClusterNode %s Ready at pod %s's IP", name, pod), func() (bool, string) {
		ip := j.podIP(t, game, pod)
		ready := j.get(t, game, "clusternode/"+name, `{.status.conditions[?(@.type=="Ready")].status}`)
		addr = j.get(t, game, "clusternode/"+name, `{.status.address}`)
		return ip != "" && ready == "True" && addr == ip+":2528", fmt.Sprintf("Ready=%q address=%q pod IP %q", ready, addr, ip)
	})
	return addr
}

func (j *journey) nodesReady(t *testing.T) {
	j.apply(t, cluster.NodesManifest)
	for _, pod := range []string{"node-0", "node-1"} {
		j.apply(t, fmt.Sprintf(cluster.ClusterNodeManifest, pod, pod))
	}
	eventually(t, 2*time.Minute, "StatefulSet node 2/2 ready", func() (bool, string) {
		n := j.get(t, game, "statefulset/node", `{.status.readyReplicas}`)
		return n == "2", "readyReplicas " + n
	})
	for _, pod := range []string{"node-0", "node-1"} {
		addr := j.nodeReadyAt(t, pod, pod, time.Minute)
		ip, _, _ := strings.Cut(addr, ":")
		// A pod IP on the node's bridge (the same /16), not loopback.
		nodeIP := j.get(t, "default", "node/skycall-node", `{.status.addresses[?(@.type=="InternalIP")].address}`)
		if o := strings.Split(nodeIP, "."); len(o) != 4 || !strings.HasPrefix(ip, o[0]+"."+o[1]+".") || ip == nodeIP {
			t.Errorf("ClusterNode %s address %s is not a pod IP on the cluster bridge (node %s)", pod, addr, nodeIP)
		}
		// The address came from the EndpointSlice controller's slice.
		slices := j.get(t, game, "endpointslices", `{range .items[*].endpoints[*]}{.targetRef.name}={.addresses[0]} {end}`)
		if !strings.Contains(slices, pod+"="+ip) {
			t.Errorf("EndpointSlices of Service node (%s) lack %s=%s", slices, pod, ip)
		}
	}
	if mb := j.get(t, game, "endpointslices", `{.items[0].metadata.labels.endpointslice\.kubernetes\.io/managed-by}`); mb != "endpointslice-controller.k8s.io" {
		t.Errorf("EndpointSlice managed by %q, want the real controller", mb)
	}
}

// send asks the sender pod to issue count messages to nodes, numbered from
// j.next, and returns its output lines as they come.
func (j *journey) send(t *testing.T, nodes string, count int) (lines <-chan string, first int) {
	t.Helper()
	first = j.next
	j.next += count
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	lines, err := cluster.SenderBatch(ctx, j.senderAddr(t), nodes, first, count)
	if err != nil {
		t.Fatal(err)
	}
	return lines, first
}

// finish reads the sender's lines to the end and fails unless every reply
// arrived; it returns every line.
func finish(t *testing.T, lines <-chan string, seen []string) []string {
	t.Helper()
	for l := range lines {
		seen = append(seen, l)
	}
	if len(seen) == 0 || seen[len(seen)-1] != "all replies received" {
		t.Fatalf("the sender did not get every reply:\n%s", strings.Join(seen, "\n"))
	}
	return seen
}

var received = regexp.MustCompile(`^received (send|call) \[msg (\d+)\]$`)

// receivedBy is the message numbers a node pod printed, in order, once it
// has printed n of them: the pod's log file is written a little after the
// node answers.
func (j *journey) receivedBy(t *testing.T, pod string, n int) []int {
	t.Helper()
	var got []int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		got = got[:0]
		out := j.kubectl(t, "logs", "-n", game, pod)
		for _, line := range strings.Split(out, "\n") {
			if m := received.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[2])
				got = append(got, n)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
	}
}

func wantSequence(t *testing.T, pod string, got []int, first, count int) {
	t.Helper()
	var want []int
	for i := first; i < first+count; i++ {
		want = append(want, i)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("node pod %s received %d messages %v, want %d in order %v", pod, len(got), got, count, want)
	}
}

func (j *journey) senderCallsBoth(t *testing.T) {
	j.next = 1
	as := "--as=system:serviceaccount:game:default"
	for _, c := range []struct {
		verb, resource, ns, want string
	}{
		{"list", "clusternodes.cluster.skycall.io", game, "yes"},
		{"watch", "clusternodes.cluster.skycall.io", game, "yes"},
		{"update", "clusternodes.cluster.skycall.io", game, "no"},
		{"list", "clusternodes.cluster.skycall.io", system, "no"},
		{"list", "pods", game, "no"},
		{"get", "secrets", game, "no"},
		{"list", "endpointslices.discovery.k8s.io", game, "no"},
	} {
		out, _ := j.c.Kubectl(context.Background(), "auth", "can-i", c.verb, c.resource, "-n", c.ns, as)
		if got := strings.TrimSpace(out); got != c.want {
			t.Errorf("can game's default ServiceAccount %s %s in %s? %q, want %q", c.verb, c.resource, c.ns, got, c.want)
		}
	}
	j.apply(t, cluster.SenderManifest)
	eventually(t, time.Minute, "sender pod Ready", func() (bool, string) {
		r := j.get(t, game, "pod/sender", `{.status.conditions[?(@.type=="Ready")].status}`)
		return r == "True", "Ready=" + r
	})
	if env := j.get(t, game, "pod/sender", `{.spec.containers[0].env}`); env != "" {
		t.Errorf("sender pod has extra environment %s; kube.NewClient should need none", env)
	}

	const count = 6
	lines, first := j.send(t, "node-0,node-1", count)
	out := finish(t, lines, nil)
	t.Logf("sender pod:\n%s", strings.Join(out, "\n"))
	for _, pod := range []string{"node-0", "node-1"} {
		wantSequence(t, pod, j.receivedBy(t, pod, count), first, count)
	}
}

func (j *journey) senderState(t *testing.T, node string) string {
	t.Helper()
	return cluster.SenderState(context.Background(), j.senderAddr(t), node)
}

func (j *journey) senderAddr(t *testing.T) string {
	return net.JoinHostPort(j.podIP(t, game, "sender"), cluster.SenderPort)
}

func (j *journey) podReplaced(t *testing.T) {
	oldUID := j.get(t, game, "pod/node-1", `{.metadata.uid}`)
	j.kubectl(t, "delete", "pod", "node-1", "-n", game, "--wait=false")

	// The pod is going: its endpoint is no longer ready, the operator marks
	// the ClusterNode not Ready, and the sender's connection has closed.
	eventually(t, time.Minute, "ClusterNode node-1 not Ready and the sender not connected to it", func() (bool, string) {
		ready := j.get(t, game, "clusternode/node-1", `{.status.conditions[?(@.type=="Ready")].status}`)
		state := j.senderState(t, "node-1")
		return ready != "True" && state != "ready", fmt.Sprintf("ClusterNode Ready=%q, sender state %q", ready, state)
	})

	const count = 10
	lines, first := j.send(t, "node-1", count)
	var seen []string
	queued := regexp.MustCompile(`^node-1: (\d+) message\(s\) waiting in its queue`)
	for l := range lines {
		seen = append(seen, l)
		if m := queued.FindStringSubmatch(l); m != nil {
			if n, _ := strconv.Atoi(m[1]); n != count {
				t.Errorf("%d of %d messages queued while node-1 was replaced, want all", n, count)
			}
			break
		}
		if strings.HasPrefix(l, "node-1: call") && strings.Contains(l, "replied") {
			t.Fatalf("a call was answered before node-1's replacement was ready:\n%s", strings.Join(seen, "\n"))
		}
	}

	// The StatefulSet brings node-1 back as a new pod with its own IP.
	eventually(t, 2*time.Minute, "node-1 replaced by a new Ready pod", func() (bool, string) {
		uid := j.get(t, game, "pod/node-1", `{.metadata.uid}`)
		ready := j.get(t, game, "pod/node-1", `{.status.conditions[?(@.type=="Ready")].status}`)
		return uid != "" && uid != oldUID && ready == "True", fmt.Sprintf("uid %q Ready=%q", uid, ready)
	})
	j.nodeReadyAt(t, "node-1", "node-1", time.Minute)
	seen = finish(t, lines, seen)
	t.Logf("sender pod:\n%s", strings.Join(seen, "\n"))
	wantSequence(t, "node-1 (new)", j.receivedBy(t, "node-1", count), first, count)
}

func (j *journey) helmUpgrade(t *testing.T) {
	j.helm(t, "upgrade", release, "charts/skycall", "-n", system, "--reuse-values",
		"--set", "replicas=2", "--wait", "--timeout=3m")
	eventually(t, 2*time.Minute, "two operator pods Ready", func() (bool, string) {
		n := j.get(t, system, "deployment/"+manager, `{.status.readyReplicas}`)
		u := j.get(t, system, "deployment/"+manager, `{.status.updatedReplicas}`)
		r := j.get(t, system, "deployment/"+manager, `{.status.replicas}`)
		return n == "2" && u == "2" && r == "2", fmt.Sprintf("ready %s updated %s replicas %s", n, u, r)
	})
	pods := strings.Fields(j.get(t, system, "pods", `{range .items[*]}{.metadata.name} {end}`))
	// Scaling does not change the pod template: the first pod stays, and by
	// now (over 15 s old) its liveness probe has run and passed.
	if r := j.get(t, system, "pod/"+j.managerPod, `{.status.containerStatuses[0].restartCount}`); r != "0" {
		t.Errorf("operator pod %s restarted %s times (failing liveness probe?)", j.managerPod, r)
	}
	eventually(t, time.Minute, "one of the operator pods leads", func() (bool, string) {
		holder := j.get(t, system, "lease/"+lease, `{.spec.holderIdentity}`)
		for _, p := range pods {
			if strings.HasPrefix(holder, p+"_") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("holder %q, pods %v", holder, pods)
	})
	// The upgraded operator still reconciles: a new ClusterNode goes Ready.
	j.apply(t, fmt.Sprintf(cluster.ClusterNodeManifest, "node-0-again", "node-0"))
	j.nodeReadyAt(t, "node-0-again", "node-0", time.Minute)
}

func (j *journey) helmUninstall(t *testing.T) {
	j.helm(t, "uninstall", release, "-n", system, "--wait", "--timeout=2m")
	eventually(t, time.Minute, "operator pods gone", func() (bool, string) {
		p := j.get(t, system, "pods", `{.items[*].metadata.name}`)
		return p == "", "pods " + p
	})
	// As the chart's values say (crds.keep): the CRD and so every
	// ClusterNode stay; everything else of the release goes.
	j.kubectl(t, "get", "crd", "clusternodes.cluster.skycall.io")
	if n := j.get(t, game, "clusternodes", `{.items[*].metadata.name}`); n != "node-0 node-0-again node-1" {
		t.Errorf("ClusterNodes after uninstall: %q, want all three kept", n)
	}
	for _, obj := range []string{
		"deployment/" + manager + " -n " + system,
		"serviceaccount/" + manager + " -n " + system,
		"service/" + manager + "-metrics -n " + system,
		"clusterrole/" + manager,
		"clusterrole/skycall-sender",
		"clusterrolebinding/" + manager,
		"rolebinding/skycall-sender -n " + game,
	} {
		args := append([]string{"get", "--ignore-not-found", "-o", "name"}, strings.Fields(obj)...)
		if out := j.kubectl(t, args...); strings.TrimSpace(out) != "" {
			t.Errorf("helm uninstall left %s", obj)
		}
	}
}

// testWriter sends hack/cluster.sh's progress lines to the test log
// (or, with no test, to w), or with SKYCALL_TEST_VERBOSE set to standard
// error as they come.
type testWriter struct {
	t *testing.T
	w io.Writer
}

func (w testWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		switch {
		case os.Getenv("SKYCALL_TEST_VERBOSE") != "":
			fmt.Fprintln(os.Stderr, l)
		case w.t != nil:
			w.t.Log(l)
		default:
			fmt.Fprintln(w.w, l)
		}
	}
	return len(p), nil
}
