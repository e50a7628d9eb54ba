package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skycall-io/skycall/test/localcp"
)

const demoNamespace = "demo"

// runDemo is `make demo`: a local control plane, the operator, two nodes and
// a sender, end to end, each a real process, everything on loopback.
func runDemo(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	managerBin := fs.String("manager", "bin/manager", "the operator binary (make build)")
	count := fs.Int("count", 6, "messages the sender issues to each node")
	_ = fs.Parse(args)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := os.Stat(*managerBin); err != nil {
		return fmt.Errorf("operator binary: %w (build it with `make build`)", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	began := time.Now()

	step(1, "Starting a local control plane: kube-apiserver and etcd on loopback (built once into ~/.cache/skycall)")
	cp, err := localcp.Start(localcp.Options{})
	if err != nil {
		return err
	}
	var procs []*localcp.Process
	defer func() {
		step(9, "Shutting down: sender, nodes, operator, control plane")
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop()
		}
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
		fmt.Printf("    every process the demo started has exited (%d)\n", len(procs)+2)
	}()
	fmt.Printf("    API server %s, tools in %s\n", cp.Config.Host, cp.Tools)
	kubectl := func(args ...string) (string, error) { return cp.Kubectl(ctx, args...) }

	step(2, "Installing the ClusterNode CRD: kubectl apply -f config/crd/bases")
	if out, err := kubectl("apply", "-f", "config/crd/bases"); err != nil {
		return err
	} else {
		fmt.Print(indent(out))
	}
	if _, err := kubectl("wait", "--for=condition=Established", "crd/clusternodes.cluster.skycall.io", "--timeout=60s"); err != nil {
		return err
	}

	step(3, "Starting the operator: "+*managerBin)
	managerLog := filepath.Join(cp.Dir, "manager.log")
	mgr, err := localcp.StartProcess("manager", managerLog, os.Stdout, []string{"KUBECONFIG=" + cp.Kubeconfig},
		*managerBin, "--metrics-bind-address=0", "--health-probe-bind-address=0")
	if err != nil {
		return err
	}
	procs = append(procs, mgr)
	fmt.Printf("    logs: %s\n", managerLog)

	step(4, "Starting two cluster nodes, alpha and beta: processes serving @echo with server.Server")
	addrs := map[string]string{}
	listening := regexp.MustCompile(`^listening on (\S+)$`)
	for _, name := range []string{"alpha", "beta"} {
		p, err := localcp.StartProcess(name, "", os.Stdout, nil, self, "node", "--name", name)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		m, err := p.WaitLine(timeout(ctx, 10*time.Second), listening)
		if err != nil {
			return err
		}
		addrs[name] = m[1]
	}

	step(5, "Applying ClusterNodes: alpha at a fixed address; beta behind Service beta, which has no ready endpoint yet")
	_, betaPort, _ := strings.Cut(addrs["beta"], "127.0.0.1:")
	if _, err := kubectl("create", "namespace", demoNamespace); err != nil {
		return err
	}
	manifest := fmt.Sprintf(demoManifest, addrs["alpha"], betaPort)
	if out, err := cp.KubectlStdin(ctx, manifest, "apply", "-n", demoNamespace, "-f", "-"); err != nil {
		return err
	} else {
		fmt.Print(indent(out))
	}
	if _, err := kubectl("wait", "-n", demoNamespace, "--for=condition=Ready", "clusternode/alpha", "--timeout=60s"); err != nil {
		return err
	}
	if _, err := kubectl("wait", "-n", demoNamespace, `--for=jsonpath={.status.conditions[?(@.type=="Ready")].reason}=NoReadyEndpoints`, "clusternode/beta", "--timeout=60s"); err != nil {
		return err
	}
	if err := showNodes(kubectl); err != nil {
		return err
	}

	step(6, fmt.Sprintf("Starting a sender: %d messages to each node, alternating send and call (kube.NewClient, Kubernetes registry)", *count))
	snd, err := localcp.StartProcess("sender", "", os.Stdout, []string{"KUBECONFIG=" + cp.Kubeconfig, "POD_NAMESPACE=" + demoNamespace},
		self, "send", "--to", "alpha,beta", "--count", strconv.Itoa(*count))
	if err != nil {
		return err
	}
	procs = append(procs, snd)
	if _, err := snd.WaitLine(timeout(ctx, 30*time.Second), regexp.MustCompile(`^beta: \d+ message\(s\) waiting in its queue`)); err != nil {
		return err
	}
	fmt.Println("    beta is not ready: its sends and calls wait in its FIFO; alpha's left as soon as its connection was confirmed")
	time.Sleep(time.Second)

	// Kubernetes refuses loopback IPs in EndpointSlices and everything here
	// is on loopback, so beta becomes ready by being given its address.
	step(7, "beta becomes ready: kubectl patch clusternode beta with its address (EndpointSlices may not hold loopback IPs)")
	readyAt := time.Now()
	patch := fmt.Sprintf(`{"spec":{"service":null,"address":%q}}`, addrs["beta"])
	if _, err := kubectl("patch", "clusternode", "beta", "-n", demoNamespace, "--type=merge", "-p", patch); err != nil {
		return err
	}
	if err := snd.Wait(timeout(ctx, 60*time.Second)); err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	fmt.Printf("    every queued message delivered %v after the patch\n", time.Since(readyAt).Round(time.Millisecond))

	step(8, "What the operator wrote: kubectl get clusternodes, and the registry's clustername.lua")
	if err := showNodes(kubectl); err != nil {
		return err
	}
	// The operator spaces registry writes (at most one a second per
	// namespace), so beta's line may trail its status by up to a second.
	var lua string
	for deadline := time.Now().Add(15 * time.Second); ; {
		lua, err = kubectl("get", "configmap", "skycall-registry", "-n", demoNamespace, "-o", `jsonpath={.data.clustername\.lua}`)
		if err == nil && strings.Contains(lua, "\nbeta = ") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the registry has no line for beta after 15s (%v):\n%s", err, lua)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Print(indent(lua))

	for _, p := range procs[1:3] {
		if err := checkOrder(p, *count); err != nil {
			return err
		}
	}
	fmt.Printf("\nOK: %d messages to each node delivered in the order issued, beta's after waiting in its queue (%v in all)\n",
		*count, time.Since(began).Round(time.Second))
	return nil
}

const demoManifest = `apiVersion: cluster.skycall.io/v1
kind: ClusterNode
metadata:
  name: alpha
spec:
  address: "%s"
---
apiVersion: v1
kind: Service
metadata:
  name: beta
spec:
  clusterIP: None
  ports:
  - name: cluster
    port: %s
---
apiVersion: cluster.skycall.io/v1
kind: ClusterNode
metadata:
  name: beta
spec:
  service:
    name: beta
    port: cluster
`

var received = regexp.MustCompile(`^received (send|call) \[msg (\d+)\]$`)

// checkOrder checks that a node printed messages 1..count in that order.
func checkOrder(p *localcp.Process, count int) error {
	var got []int
	for _, line := range p.Output() {
		if m := received.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			got = append(got, n)
		}
	}
	for i, n := range got {
		if n != i+1 {
			return fmt.Errorf("node %s received messages in the order %v, want 1..%d", p.Name, got, count)
		}
	}
	if len(got) != count {
		return fmt.Errorf("node %s received %d messages %v, want %d", p.Name, len(got), got, count)
	}
	return nil
}

func showNodes(kubectl func(...string) (string, error)) error {
	out, err := kubectl("get", "clusternodes", "-n", demoNamespace)
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	return nil
}

func step(n int, msg string) {
	fmt.Printf("\n==> [%d/9] %s\n", n, msg)
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

func timeout(ctx context.Context, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(ctx, d)
	_ = cancel // released when the demo exits; these are few and short
	return ctx
}
