// Package cluster runs the real one-node Kubernetes cluster of
// hack/cluster.sh for tests and `make demo-cluster`: a kubelet with
// containerd and runc, pods with their own IPs on a bridge, the real
// controller manager, scheduler and kube-proxy, kube-router enforcing
// NetworkPolicies, and the project's images
// (hack/ociimage) imported into containerd. It needs root on Linux.
//
// One user at a time: Up holds a lock (beside the state directory) until
// Down, so test packages that each want the cluster take turns.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skycall-io/skycall/test/localcp"
)

// Images are the references hack/cluster.sh images imports (see
// test/ociimage).
const (
	ManagerImage = "localhost/skycall/skycall-manager"
	DemoImage    = "localhost/skycall/skycall-demo"
	ImageTag     = "dev"
)

// ownerFile, in the state directory, holds the pid of the process that
// brought the cluster up through this package.
const ownerFile = "owner-pid"

// Cluster is a running cluster.
type Cluster struct {
	// Root is the repository root; Kubeconfig the administrator's
	// kubeconfig; Tools the directory of kubectl, helm and the rest.
	Root, Kubeconfig, Tools string
	// Progress receives hack/cluster.sh's progress lines.
	Progress io.Writer

	state  string
	lock   *os.File
	before []string // host paths and cgroups that existed before Up
	helm   string   // helm's own directories
}

// Mandatory reports whether the cluster tests must run rather than skip:
// CI=true or SKYCALL_REQUIRE_CLUSTER=1.
func Mandatory() bool {
	return os.Getenv("CI") == "true" || os.Getenv("SKYCALL_REQUIRE_CLUSTER") == "1"
}

// Unavailable says why the cluster cannot run here, or "" when it can.
// Missing tools count only when buildTools is false.
func Unavailable(root string, buildTools bool) string {
	if runtime.GOOS != "linux" {
		return "the cluster needs Linux (kubelet, network namespaces, cgroups)"
	}
	if os.Geteuid() != 0 {
		return "the cluster needs root (a bridge, network namespaces, mounts, cgroups); run as root, e.g. sudo make test"
	}
	if buildTools {
		return ""
	}
	out, err := exec.Command("bash", filepath.Join(root, "hack", "cluster-tools.sh"), "--check").Output()
	if err != nil {
		return strings.TrimSpace(string(out)) + "; build them once with `make cluster-tools` (about 25 minutes on 2 cores)"
	}
	return ""
}

// Up builds the tools if missing, starts the cluster (hack/cluster.sh up)
// and imports the images built from this work tree (hack/cluster.sh images).
// On error nothing is left running.
func Up(ctx context.Context, progress io.Writer) (*Cluster, error) {
	root, err := localcp.RepoRoot()
	if err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	c := &Cluster{Root: root, Progress: progress, state: StateDir()}
	if err := c.takeLock(ctx); err != nil {
		return nil, err
	}
	// Holding the session lock, a cluster still here that one of us started
	// was left by a process that died before Down (a killed test binary):
	// take it down. One started by hand (hack/cluster.sh up) is someone's.
	if _, err := os.Stat(c.state); err == nil {
		owner, _ := os.ReadFile(filepath.Join(c.state, ownerFile))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(owner)))
		if pid <= 0 || syscall.Kill(pid, 0) == nil {
			c.unlock()
			return nil, fmt.Errorf("a cluster is already up in %s (started by hand or by process %q); take it down with `hack/cluster.sh down`", c.state, strings.TrimSpace(string(owner)))
		}
		fmt.Fprintf(progress, "a cluster left by process %d, which has exited, is in %s; tearing it down first\n", pid, c.state)
		if _, err := c.script(ctx, "down"); err != nil {
			c.unlock()
			return nil, err
		}
	}
	c.before = hostTraces()
	out, err := c.script(ctx, "up")
	if err != nil {
		// hack/cluster.sh has torn down what it started; say if it could not.
		defer c.unlock()
		return nil, errors.Join(err, c.leftBehind(ctx))
	}
	c.Kubeconfig = lastLine(out)
	if err := os.WriteFile(filepath.Join(c.state, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = c.Down(context.Background())
		return nil, fmt.Errorf("cluster state: %w", err)
	}
	tools, err := os.ReadFile(filepath.Join(c.state, "tools"))
	if err != nil {
		_ = c.Down(context.Background())
		return nil, fmt.Errorf("cluster state: %w", err)
	}
	c.Tools = strings.TrimSpace(string(tools))
	c.helm = filepath.Join(c.state, "helm")
	if _, err := c.script(ctx, "images"); err != nil {
		_ = c.Down(context.Background())
		return nil, err
	}
	return c, nil
}

// StateDir is hack/cluster.sh's state directory ($SKYCALL_CLUSTER_DIR).
func StateDir() string {
	if d := os.Getenv("SKYCALL_CLUSTER_DIR"); d != "" {
		return filepath.Clean(d)
	}
	return "/var/tmp/skycall-cluster"
}

// Down tears the cluster down and returns an error naming whatever is left
// behind on the machine.
func (c *Cluster) Down(ctx context.Context) error {
	defer c.unlock()
	_, err := c.script(ctx, "down")
	return errors.Join(err, c.leftBehind(ctx))
}

// leftBehind says what of a cluster is still on the machine: processes,
// mounts, the bridge, nftables, kube-router's iptables chains and ipsets
// (hack/cluster.sh check), and host paths, cgroups and kernel settings that
// differ from before Up.
func (c *Cluster) leftBehind(ctx context.Context) error {
	var err error
	if out, cerr := c.script(ctx, "check"); cerr != nil {
		err = fmt.Errorf("left behind: %s", strings.TrimSpace(out))
	}
	var left []string
	for _, p := range hostTraces() {
		if !slices.Contains(c.before, p) {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		err = errors.Join(err, fmt.Errorf("left behind or changed: %s", strings.Join(left, ", ")))
	}
	return err
}

// hostTraces lists the host paths and cgroups a kubelet or CNI writes
// whatever its configuration says, that exist now, and the kernel settings
// kubelet, kube-proxy and hack/cluster.sh may change, with their values.
func hostTraces() []string {
	var have []string
	for _, k := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
		"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet",
		"net/bridge/bridge-nf-call-iptables"} {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			have = append(have, "sysctl "+k+"="+strings.TrimSpace(string(b)))
		}
	}
	paths := []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/var/lib/cni", "/run/containerd"}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	paths = append(paths, cg...)
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			have = append(have, p)
		}
	}
	return have
}

func (c *Cluster) takeLock(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(c.state), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(c.state+".session.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		c.lock = f
		return nil
	}
	fmt.Fprintf(c.Progress, "waiting for another user of the cluster (%s)\n", f.Name())
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			c.lock = f
			return nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return fmt.Errorf("waiting for the cluster lock %s: %w", f.Name(), ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func (c *Cluster) unlock() {
	if c.lock != nil {
		c.lock.Close() // releases the flock
		c.lock = nil
	}
}

// script runs hack/cluster.sh verb, its progress (standard error) going to
// c.Progress; the error carries the last lines of that progress.
func (c *Cluster) script(ctx context.Context, verb string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(c.Root, "hack", "cluster.sh"), verb)
	cmd.Dir = c.Root
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, c.Progress)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("hack/cluster.sh %s: %w\n%s", verb, err, tail(stderr.String(), 40))
	}
	return stdout.String(), nil
}

// Kubectl runs kubectl as the administrator and returns its standard output;
// an error carries standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, "", "kubectl", args...)
}

// KubectlStdin runs kubectl with stdin as its standard input.
func (c *Cluster) KubectlStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	return c.run(ctx, stdin, "kubectl", args...)
}

// Helm runs helm as the administrator.
func (c *Cluster) Helm(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, "", "helm", args...)
}

func (c *Cluster) run(ctx context.Context, stdin, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.Tools, tool), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Dir = c.Root
	cmd.Env = c.Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Env is the environment for running kubectl and helm as the
// administrator: this process's, with KUBECONFIG and helm's own
// directories (not the user's) set.
func (c *Cluster) Env() []string {
	return append(os.Environ(),
		"KUBECONFIG="+c.Kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(c.helm, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(c.helm, "config"),
		"HELM_DATA_HOME="+filepath.Join(c.helm, "data"),
	)
}

// DumpPods writes what someone debugging a failed step looks at first:
// every pod with its node IP and status, recent events, and the logs of
// every container of every pod (previous instances too).
func (c *Cluster) DumpPods(ctx context.Context, w io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	section := func(title, out string, err error) {
		fmt.Fprintf(w, "----- %s\n%s", title, out)
		if err != nil {
			fmt.Fprintf(w, "(%v)\n", err)
		}
	}
	out, err := c.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
	section("kubectl get pods -A -o wide", out, err)
	out, err = c.Kubectl(ctx, "get", "events", "-A", "--sort-by=.lastTimestamp")
	section("kubectl get events -A", tail(out, 60), err)
	pods, err := c.Kubectl(ctx, "get", "pods", "-A", "-o", `jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}`)
	if err != nil {
		section("pods", "", err)
		return
	}
	for _, p := range strings.Fields(pods) {
		ns, name, _ := strings.Cut(p, "/")
		out, err := c.Kubectl(ctx, "logs", "-n", ns, name, "--all-containers", "--prefix", "--tail=200")
		section("logs of pod "+p, out, err)
		if prev, err := c.Kubectl(ctx, "logs", "-n", ns, name, "--all-containers", "--prefix", "--previous", "--tail=100"); err == nil && prev != "" {
			section("logs of the previous instance of pod "+p, prev, nil)
		}
	}
}

// ComponentLogs returns the last lines of a cluster component's log
// (containerd, etcd, apiserver, kubelet, kcm, scheduler, kube-proxy,
// kube-router).
func (c *Cluster) ComponentLogs(component string, lines int) string {
	b, err := os.ReadFile(filepath.Join(c.state, "logs", component+".log"))
	if err != nil {
		return err.Error()
	}
	return tail(string(b), lines)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// KillContainer kills every process of a container with SIGKILL from the
// host, as the kernel's OOM killer or a crash ends it: neither the kubelet
// nor containerd takes part, so no preStop, no SIGTERM, no grace. The
// container is named as a pod's status names it ("containerd://ID") and its
// processes found by their cgroup. It returns them, "PID COMMAND" each.
func KillContainer(containerID string) ([]string, error) {
	_, id, ok := strings.Cut(containerID, "://")
	if !ok || len(id) < 12 {
		return nil, fmt.Errorf("%q is not a container ID as a pod's status gives it", containerID)
	}
	cgroups, err := filepath.Glob("/proc/[0-9]*/cgroup")
	if err != nil {
		return nil, err
	}
	var killed []string
	for _, f := range cgroups {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte(id)) {
			continue // gone, or another container's
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return killed, fmt.Errorf("killing process %d of container %s: %w", pid, id, err)
		}
		killed = append(killed, fmt.Sprintf("%d %s", pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))))
	}
	if len(killed) == 0 {
		return nil, fmt.Errorf("no process is in the cgroup of container %s", id)
	}
	return killed, nil
}
