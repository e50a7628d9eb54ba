package cluster_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/test/cluster"
)

// Each dialer pod tries every address dialRounds times, a second apart,
// each attempt bounded by dialTimeout.
const (
	dialRounds  = 10
	dialTimeout = 3 * time.Second
)

// dialPodManifest is a pod in the skynet namespace that runs skycall-demo
// dial against addrs and exits; label, a YAML map entry, is added to its
// labels when not empty.
func dialPodManifest(name, label, addrs string) string {
	labels := "app: " + name
	if label != "" {
		labels += ", " + label
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s, labels: {%s}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  containers:
  - name: dial
    image: %s
    imagePullPolicy: Never
    args: ["dial", "--to=%s", "--timeout=%v", "--rounds=%d"]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
`, name, skynetNS, labels, cluster.DemoImage+":"+cluster.ImageTag, addrs, dialTimeout, dialRounds)
}

// dialAttempt is one line of skycall-demo dial: "ADDR VERB in DURATION[: ERROR]".
type dialAttempt struct {
	addr, verb string // verb: connected, refused, timed out, failed
	took       time.Duration
	line       string
}

func parseDials(t *testing.T, out string) map[string][]dialAttempt {
	t.Helper()
	byAddr := map[string][]dialAttempt{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		addr, rest, _ := strings.Cut(line, " ")
		verb, rest, ok := strings.Cut(rest, " in ")
		durText, _, _ := strings.Cut(rest, ":")
		took, err := time.ParseDuration(durText)
		if !ok || err != nil {
			t.Fatalf("skycall-demo dial printed %q, not ADDR VERB in DURATION", line)
		}
		byAddr[addr] = append(byAddr[addr], dialAttempt{addr, verb, took, line})
	}
	return byAddr
}

// networkPolicyFence checks what config/samples/skynet/networkpolicy.yaml
// promises, as kube-router enforces it in the local cluster: a pod with the
// label skycall.io/skynet-client connects to a skynet pod's cluster port; a
// pod without it is refused there, each attempt within dialTimeout; neither
// reaches the agent's port 9090, nor the manager's metrics port (the chart's
// NetworkPolicy, metrics only from the namespace monitoring). The kubelet's
// probes, from the node, keep every pod Ready meanwhile.
func (j *journey) networkPolicyFence(t *testing.T) {
	skyIP := j.get(t, skynetNS, "pod/sky-0", `{.status.podIP}`)
	manager := func(jsonpath string) string {
		return strings.TrimSpace(j.kubectl(t, "get", "pods", "-n", system, "-l", "app.kubernetes.io/component=manager", "-o", "jsonpath="+jsonpath))
	}
	mgrIP := manager(`{.items[0].status.podIP}`)
	mgrPort := manager(`{.items[0].spec.containers[0].ports[?(@.name=="metrics")].containerPort}`)
	if skyIP == "" || mgrIP == "" || mgrPort == "" {
		t.Fatalf("addresses: sky-0 %q, manager %q port %q", skyIP, mgrIP, mgrPort)
	}
	clusterPort, agentPort, metricsPort := net.JoinHostPort(skyIP, "2528"), net.JoinHostPort(skyIP, "9090"), net.JoinHostPort(mgrIP, mgrPort)
	addrs := strings.Join([]string{clusterPort, agentPort, metricsPort}, ",")
	pods := map[string]string{"fence-client": cluster.SkynetClientLabel, "fence-stranger": ""}
	for name, label := range pods {
		j.apply(t, dialPodManifest(name, label, addrs))
	}
	t.Cleanup(func() {
		_, _ = j.c.Kubectl(context.Background(), "delete", "pod", "-n", skynetNS, "fence-client", "fence-stranger", "--wait=false")
	})
	eventually(t, 3*time.Minute, "both dialer pods finish", func() (bool, string) {
		var phases []string
		for name := range pods {
			phases = append(phases, name+" "+j.get(t, skynetNS, "pod/"+name, `{.status.phase}`))
		}
		slices.Sort(phases)
		return !slices.ContainsFunc(phases, func(p string) bool { return !strings.HasSuffix(p, " Succeeded") }), strings.Join(phases, ", ")
	})
	client := parseDials(t, j.kubectl(t, "logs", "-n", skynetNS, "fence-client"))
	stranger := parseDials(t, j.kubectl(t, "logs", "-n", skynetNS, "fence-stranger"))

	// The labelled pod: refused only until kube-router has added its new IP
	// to the policy's source set, then connected every time.
	tries := client[clusterPort]
	first := slices.IndexFunc(tries, func(a dialAttempt) bool { return a.verb == "connected" })
	if first < 0 || len(tries) != dialRounds {
		t.Fatalf("the labelled pod never connected to sky-0's cluster port %s in %d rounds:\n%s", clusterPort, dialRounds, lines(tries))
	}
	for _, a := range tries[first:] {
		if a.verb != "connected" {
			t.Errorf("the labelled pod, once admitted, was then not: %s", a.line)
		}
	}
	t.Logf("labelled pod -> sky-0:2528: connected from round %d of %d (before: kube-router adding the new pod's IP), connect %v",
		first+1, dialRounds, tries[len(tries)-1].took)

	// Refused, and within the bound, every time: the stranger everywhere,
	// the labelled pod on the two ports it was not given.
	var worst time.Duration
	kinds := map[string]int{}
	for _, refused := range [][]dialAttempt{stranger[clusterPort], stranger[agentPort], stranger[metricsPort], client[agentPort], client[metricsPort]} {
		if len(refused) != dialRounds {
			t.Errorf("want %d attempts, got:\n%s", dialRounds, lines(refused))
		}
		for _, a := range refused {
			if a.verb != "refused" && a.verb != "timed out" {
				t.Errorf("a connection the NetworkPolicies forbid was not refused: %s", a.line)
			}
			if a.took > dialTimeout+time.Second {
				t.Errorf("a forbidden connection took %v to fail, beyond the %v bound: %s", a.took, dialTimeout, a.line)
			}
			worst = max(worst, a.took)
			kinds[a.verb]++
		}
	}
	t.Logf("forbidden connections (unlabelled pod -> sky-0:2528, any pod -> sky-0:9090 and the manager's metrics %s): %v; slowest failure %v",
		mgrPort, kinds, worst)

	// The kubelet's probes come from the node: every pod is still Ready.
	for _, p := range []struct{ ns, pod string }{{skynetNS, "sky-0"}, {skynetNS, "sky-1"}, {skynetNS, "sky-2"}} {
		if ready := j.get(t, p.ns, "pod/"+p.pod, `{.status.conditions[?(@.type=="Ready")].status}`); ready != "True" {
			t.Errorf("pod %s/%s Ready=%q under the NetworkPolicy (its probes come from the node)", p.ns, p.pod, ready)
		}
	}
	if ready := manager(`{.items[0].status.conditions[?(@.type=="Ready")].status}`); ready != "True" {
		t.Errorf("the manager pod Ready=%q under the chart's NetworkPolicy", ready)
	}
}

func lines(as []dialAttempt) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString("  " + a.line + "\n")
	}
	return b.String()
}
