package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skycall-io/skycall/test/cluster"
)

const clusterSteps = 9

// runCluster is `make demo-cluster`: the demo's story on a real one-node
// cluster (hack/cluster.sh): the chart's operator as a pod, Go nodes as a
// StatefulSet whose ClusterNodes follow their pod IPs through the real
// EndpointSlice controller, a sender pod, and a node pod replaced in the
// middle while the sender's messages wait for it. Needs root on Linux.
func runCluster(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ExitOnError)
	count := fs.Int("count", 6, "messages the sender issues to each node, and again during the restart")
	_ = fs.Parse(args)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	began := time.Now()

	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if why := cluster.Unavailable(root, true); why != "" {
		return errors.New(why)
	}

	cstep(1, "Starting a one-node cluster: etcd, kube-apiserver, controller manager, scheduler, kube-proxy, kubelet + containerd; images built from this tree (hack/cluster.sh)")
	c, err := cluster.Up(ctx, prefixWriter{"    | "})
	if err != nil {
		return err
	}
	defer func() {
		cstep(clusterSteps, "Tearing down: workloads first, then every process, mount, the bridge and cgroups")
		if err := c.Down(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "tear-down:", err)
			return
		}
		fmt.Println("    nothing left behind")
	}()
	kubectl := func(args ...string) (string, error) { return c.Kubectl(ctx, args...) }
	show := func(args ...string) error {
		out, err := kubectl(args...)
		fmt.Print(indent(out))
		return err
	}
	failed := func(err error) error {
		fmt.Println("\n    the demo failed; every pod's logs:")
		var b strings.Builder
		c.DumpPods(context.Background(), &b)
		fmt.Print(indent(b.String()))
		return err
	}
	if err := show("get", "nodes", "-o", "wide"); err != nil {
		return failed(err)
	}

	cstep(2, "helm install skycall charts/skycall: the operator runs as a pod with the chart's ServiceAccount")
	if _, err := kubectl("create", "namespace", cluster.Namespace); err != nil {
		return failed(err)
	}
	if _, err := c.Helm(ctx, "install", "skycall", "charts/skycall", "-n", "skycall-system", "--create-namespace",
		"--set", "image.repository="+cluster.ManagerImage, "--set", "image.tag="+cluster.ImageTag,
		"--set", "image.pullPolicy=Never", "--set", "sender.namespaces={"+cluster.Namespace+"}",
		"--wait", "--timeout=3m"); err != nil {
		return failed(err)
	}
	if err := show("get", "pods", "-n", "skycall-system", "-o", "wide"); err != nil {
		return failed(err)
	}

	cstep(3, "Two Go nodes as StatefulSet node (pods node-0, node-1, each a server.Server) and a ClusterNode per pod")
	if _, err := c.KubectlStdin(ctx, cluster.NodesManifest, "apply", "-f", "-"); err != nil {
		return failed(err)
	}
	for _, pod := range []string{"node-0", "node-1"} {
		if _, err := c.KubectlStdin(ctx, fmt.Sprintf(cluster.ClusterNodeManifest, pod, pod), "apply", "-f", "-"); err != nil {
			return failed(err)
		}
	}
	if _, err := kubectl("rollout", "status", "statefulset/node", "-n", cluster.Namespace, "--timeout=3m"); err != nil {
		return failed(err)
	}
	if _, err := kubectl("wait", "-n", cluster.Namespace, "--for=condition=Ready", "clusternode/node-0", "clusternode/node-1", "--timeout=60s"); err != nil {
		return failed(err)
	}
	if err := show("get", "pods", "-n", cluster.Namespace, "-o", "wide"); err != nil {
		return failed(err)
	}
	fmt.Println("    the EndpointSlice controller's view of Service node:")
	if err := show("get", "endpointslices", "-n", cluster.Namespace, "-o",
		`jsonpath={range .items[*].endpoints[*]}{.targetRef.name} {.addresses[0]} ready={.conditions.ready}{"\n"}{end}`); err != nil {
		return failed(err)
	}
	fmt.Println("    the ClusterNodes the operator resolved, at the pod IPs:")
	if err := show("get", "clusternodes", "-n", cluster.Namespace); err != nil {
		return failed(err)
	}

	cstep(4, "A sender pod (kube.NewClient, the namespace's default ServiceAccount bound to skycall-sender only)")
	if _, err := c.KubectlStdin(ctx, cluster.SenderManifest, "apply", "-f", "-"); err != nil {
		return failed(err)
	}
	if _, err := kubectl("wait", "-n", cluster.Namespace, "--for=condition=Ready", "pod/sender", "--timeout=2m"); err != nil {
		return failed(err)
	}
	senderIP, err := kubectl("get", "pod", "sender", "-n", cluster.Namespace, "-o", "jsonpath={.status.podIP}")
	if err != nil {
		return failed(err)
	}
	senderAddr := net.JoinHostPort(senderIP, cluster.SenderPort)
	if err := show("get", "pod", "sender", "-n", cluster.Namespace, "-o", "wide"); err != nil {
		return failed(err)
	}
	fmt.Println("    what its ServiceAccount may do with ClusterNodes and pods (kubectl auth can-i):")
	for _, q := range [][]string{{"watch", "clusternodes.cluster.skycall.io"}, {"update", "clusternodes.cluster.skycall.io"}, {"list", "pods"}} {
		out, _ := kubectl("auth", "can-i", q[0], q[1], "-n", cluster.Namespace, "--as=system:serviceaccount:"+cluster.Namespace+":default")
		fmt.Printf("    %-6s %-32s %s\n", q[0], q[1], strings.TrimSpace(out))
	}

	cstep(5, fmt.Sprintf("The sender calls both nodes by name: %d messages each, alternating send and call", *count))
	next := 1
	if err := batch(ctx, senderAddr, "node-0,node-1", next, *count); err != nil {
		return failed(err)
	}
	next += *count

	cstep(6, "Pod node-1 is deleted: its endpoint goes, the ClusterNode is no longer Ready, the sender's connection closes")
	oldIP, _ := kubectl("get", "pod", "node-1", "-n", cluster.Namespace, "-o", "jsonpath={.status.podIP}")
	if _, err := kubectl("delete", "pod", "node-1", "-n", cluster.Namespace, "--wait=false"); err != nil {
		return failed(err)
	}
	if err := waitFor(ctx, 60*time.Second, func() bool {
		r, _ := kubectl("get", "clusternode", "node-1", "-n", cluster.Namespace, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return r != "True" && cluster.SenderState(ctx, senderAddr, "node-1") != "ready"
	}); err != nil {
		return failed(fmt.Errorf("ClusterNode node-1 still Ready after its pod was deleted: %w", err))
	}
	if err := show("get", "clusternode", "node-1", "-n", cluster.Namespace); err != nil {
		return failed(err)
	}

	cstep(7, fmt.Sprintf("The sender issues %d more messages to node-1 while the StatefulSet replaces the pod: they wait in node-1's queue", *count))
	done := make(chan error, 1)
	go func() { done <- batch(ctx, senderAddr, "node-1", next, *count) }()
	if err := waitFor(ctx, 3*time.Minute, func() bool {
		r, _ := kubectl("get", "clusternode", "node-1", "-n", cluster.Namespace, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return r == "True"
	}); err != nil {
		return failed(fmt.Errorf("node-1 did not come back: %w", err))
	}
	readyAt := time.Now()
	if err := <-done; err != nil {
		return failed(err)
	}
	newIP, _ := kubectl("get", "pod", "node-1", "-n", cluster.Namespace, "-o", "jsonpath={.status.podIP}")
	fmt.Printf("    node-1 is back at %s (was %s); every queued message delivered %v after its ClusterNode went Ready\n",
		newIP, oldIP, time.Since(readyAt).Round(time.Millisecond))
	fmt.Println("    what the new node-1 pod received (kubectl logs node-1):")
	// The pod's log file is written a little after the node answers.
	var logs string
	_ = waitFor(ctx, 15*time.Second, func() bool {
		logs, err = kubectl("logs", "node-1", "-n", cluster.Namespace)
		return err == nil && countReceived(logs) >= *count
	})
	if err != nil {
		return failed(err)
	}
	fmt.Print(indent(logs))
	if err := inOrder(logs, next, *count); err != nil {
		return failed(err)
	}

	cstep(8, "What the operator wrote: kubectl get clusternodes, and the registry's clustername.lua")
	if err := show("get", "clusternodes", "-n", cluster.Namespace); err != nil {
		return failed(err)
	}
	var lua string
	if err := waitFor(ctx, 15*time.Second, func() bool {
		lua, _ = kubectl("get", "configmap", "skycall-registry", "-n", cluster.Namespace, "-o", `jsonpath={.data.clustername\.lua}`)
		return strings.Contains(lua, newIP)
	}); err != nil {
		return failed(fmt.Errorf("the registry does not show node-1's new address %s:\n%s", newIP, lua))
	}
	fmt.Print(indent(lua))
	fmt.Printf("\nOK: real pods, real pod IPs, node-1 replaced midway and its %d queued messages delivered in order (%v in all)\n",
		*count, time.Since(began).Round(time.Second))
	return nil
}

// batch has the sender pod issue messages and prints what it says.
func batch(ctx context.Context, senderAddr, nodes string, first, count int) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	lines, err := cluster.SenderBatch(ctx, senderAddr, nodes, first, count)
	if err != nil {
		return err
	}
	last := ""
	for l := range lines {
		fmt.Printf("    sender | %s\n", l)
		last = l
	}
	if last != "all replies received" {
		return fmt.Errorf("the sender did not get every reply (last line %q)", last)
	}
	return nil
}

// inOrder checks a node pod's log holds messages first..first+count-1 in
// that order and nothing else.
func inOrder(logs string, first, count int) error {
	var got []int
	for _, line := range strings.Split(logs, "\n") {
		if m := received.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			got = append(got, n)
		}
	}
	for i, n := range got {
		if n != first+i {
			return fmt.Errorf("node-1 received messages in the order %v, want %d..%d", got, first, first+count-1)
		}
	}
	if len(got) != count {
		return fmt.Errorf("node-1 received %d messages %v, want %d", len(got), got, count)
	}
	return nil
}

// countReceived counts the messages a node's log says it received.
func countReceived(logs string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if received.MatchString(line) {
			n++
		}
	}
	return n
}

func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

func cstep(n int, msg string) {
	fmt.Printf("\n==> [%d/%d] %s\n", n, clusterSteps, msg)
}

// prefixWriter indents hack/cluster.sh's progress lines under a step.
type prefixWriter struct{ prefix string }

var clusterLine = regexp.MustCompile(`^\[cluster\s+\d+s\] `)

func (w prefixWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		fmt.Println(w.prefix + clusterLine.ReplaceAllString(l, ""))
	}
	return len(p), nil
}
