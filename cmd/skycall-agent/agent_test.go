package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/localcp"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// timeout bounds every wait: generous, because the machine is shared, and
// never a claim about speed.
const timeout = 60 * time.Second

// TestAgentKeepsSkynetOnTheNamespacesClusterNodes runs the skycall-agent
// binary with a ServiceAccount that has only the skycall-sender role,
// against a real kube-apiserver, beside a real skynet node running
// skycall's Lua service: skynet learns the namespace's nodes, follows a
// change of address, and gets its config back after a crash and restart;
// /readyz and /metrics say so.
func TestAgentKeepsSkynetOnTheNamespacesClusterNodes(t *testing.T) {
	ctx, k8s, ns, kubeconfig := skynetNamespace(t)

	goA, goB := goNode(t, "go_a"), goNode(t, "go_b")
	goCN := readyNode(t, k8s, ns, "go", goA)
	readyNode(t, k8s, ns, "old", "") // spec.down: pushed as false

	token := filepath.Join(t.TempDir(), "token")
	sky := startSky(t, "sky1", 0, token)
	c := sender.New(registry.NewStatic(map[string]string{"sky1": sky.Addr}), sender.WithLogger(testr.New(t)),
		sender.WithBackoff(20*time.Millisecond, 300*time.Millisecond))
	t.Cleanup(func() { c.Close() })
	drive := func(args ...any) []any {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		got, err := c.CallValues(cctx, "sky1", "@driver", args...)
		if err != nil {
			return []any{false, err.Error()}
		}
		return got
	}

	agent := startAgent(t, kubeconfig, ns, "sky1", sky.Addr, token)
	eventually(t, "the agent ready", func() bool { return agent.ready() })
	if got := drive("call", "go", "@echo", "hi"); !reflect.DeepEqual(got, []any{true, "hi"}) {
		t.Fatalf("skynet -> go after the agent's push: %#v", got)
	}
	if got := drive("call", "old", "@echo", "hi"); got[0] != false {
		t.Errorf("skynet -> old (spec.down): %#v, want a failure", got)
	}

	// A change of address reaches skynet: measured from the status write.
	changed := time.Now()
	setReady(t, k8s, goCN, goB)
	eventually(t, "skynet follows go to go_b", func() bool {
		return reflect.DeepEqual(drive("query", "go", "__skycall_node"), []any{true, "go_b"})
	})
	t.Logf("address change in the API server to skynet calling the new address: %v", time.Since(changed))

	// skynet crashes and comes back on its port with no config: the agent
	// sees the new incarnation and pushes again.
	sky.Kill()
	eventually(t, "the agent unready while skynet is down", func() bool { return !agent.ready() })
	startSky(t, "sky1", sky.Port, token)
	eventually(t, "skynet, restarted, calls go again", func() bool {
		return reflect.DeepEqual(drive("call", "go", "@echo", "back"), []any{true, "back"})
	})
	eventually(t, "the agent ready again", func() bool { return agent.ready() })
	metrics := agent.get("/metrics")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`skycall_agent_pushes_total\{result="applied"\} ([3-9]|\d\d)`),
		regexp.MustCompile(`skycall_agent_skynet_restarts_total [1-9]`),
		regexp.MustCompile(`skycall_agent_config_generation_applied 2\n`),
		regexp.MustCompile(`skycall_agent_config_lag_seconds 0\n`),
	} {
		if !want.MatchString(metrics) {
			t.Errorf("metrics lack %s:\n%s", want, grep(metrics, "skycall_agent_"))
		}
	}
	if strings.Contains(agent.logs(), "forbidden") {
		t.Errorf("the agent was refused something with the sender role:\n%s", agent.logs())
	}

	// The agent restarts (a new token, its generation count back at 1)
	// while skynet keeps generation 2: it goes on from skynet's generation,
	// so the next change is applied, not refused as older.
	agent.stop()
	agent = startAgent(t, kubeconfig, ns, "sky1", sky.Addr, token)
	eventually(t, "the restarted agent ready", func() bool { return agent.ready() })
	setReady(t, k8s, goCN, goA)
	eventually(t, "skynet follows go back to go_a after the agent restarted", func() bool {
		return reflect.DeepEqual(drive("query", "go", "__skycall_node"), []any{true, "go_a"})
	})
	if m := agent.get("/metrics"); !regexp.MustCompile(`skycall_agent_config_generation_applied 3\n`).MatchString(m) ||
		!regexp.MustCompile(`skycall_agent_pushes_total\{result="refused"\} 0\n`).MatchString(m) {
		t.Errorf("after a restart and a change, want generation 3 applied and nothing refused:\n%s", grep(m, "skycall_agent_"))
	}
}

// skynetNamespace is what a test of the agent beside a real skynet starts
// from: a real kube-apiserver and etcd with namespace "game" and its
// ServiceAccount "skynet" bound to the skycall-sender role. It returns a
// ctx bounding the test, a client, the namespace and that ServiceAccount's
// kubeconfig; without skynet it fails under SKYCALL_REQUIRE_SKYNET, else
// skips.
func skynetNamespace(t *testing.T) (context.Context, client.Client, string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real kube-apiserver and etcd (hack/control-plane.sh) and skynet (hack/skynet.sh); not in -short")
	}
	skynetpeer.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*timeout)
	t.Cleanup(cancel)
	cp, err := localcp.Start(localcp.Options{CRDDirs: []string{"config/crd/bases"}})
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	k8s, err := cp.Client()
	if err != nil {
		t.Fatal(err)
	}
	const ns = "game"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "skynet"}}); err != nil {
		t.Fatal(err)
	}
	if out, err := cp.Kubectl(ctx, "apply", "-f", filepath.Join(cp.Root, "config/rbac/sender_role.yaml")); err != nil {
		t.Fatal(out, err)
	}
	if out, err := cp.Kubectl(ctx, "-n", ns, "create", "rolebinding", "skycall-sender",
		"--clusterrole=skycall-sender", "--serviceaccount="+ns+":skynet"); err != nil {
		t.Fatal(out, err)
	}
	kubeconfig, err := cp.ServiceAccountKubeconfig(ctx, ns, "skynet")
	if err != nil {
		t.Fatal(err)
	}
	return ctx, k8s, ns, kubeconfig
}

// startSky starts a skynet node running skycall's Lua service with
// test/skynetagent's start service (@echo, @driver), taking pushes from the
// holder of the token in file token.
func startSky(t *testing.T, node string, port int, token string) *skynetpeer.Node {
	t.Helper()
	lua := "../../test/skynetagent/lua"
	return skynetpeer.Start(t, skynetpeer.Config{
		Name: node, Start: "agent_main", Port: port,
		LuaPath: []string{lua, "../../lua/skycall", "../../test/interop/lua"},
		Env:     map[string]string{"skycall_node": node, "skycall_token_file": token},
	})
}

// goNode is a skycall Server named name answering @echo.
func goNode(t *testing.T, name string) string { return sendertest.EchoNode(t, name) }

// readyNode creates ClusterNode name with a fixed address, resolved Ready
// as the operator would; addr "" makes it spec.down instead.
func readyNode(t *testing.T, k8s client.Client, ns, name, addr string) *skycallv1.ClusterNode {
	t.Helper()
	cn := &skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if addr == "" {
		cn.Spec = skycallv1.ClusterNodeSpec{Address: "10.0.0.1:2526", Down: true}
	} else {
		cn.Spec = skycallv1.ClusterNodeSpec{Address: addr}
	}
	if err := k8s.Create(context.Background(), cn); err != nil {
		t.Fatal(err)
	}
	if addr != "" {
		setReady(t, k8s, cn, addr)
	}
	return cn
}

// setReady writes cn's status as the operator does for a fixed address.
func setReady(t *testing.T, k8s client.Client, cn *skycallv1.ClusterNode, addr string) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(cn), cn); err != nil {
		t.Fatal(err)
	}
	cn.Status.NodeName = cn.Name
	cn.Status.Address = addr
	cn.Status.ObservedGeneration = cn.Generation
	meta.SetStatusCondition(&cn.Status.Conditions, metav1.Condition{
		Type: skycallv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Resolved",
		Message: "set by the test", ObservedGeneration: cn.Generation,
	})
	if err := k8s.Status().Update(ctx, cn); err != nil {
		t.Fatal(err)
	}
}

type agentProc struct {
	t    *testing.T
	base string
	stop func() // ends the process, at most once
	mu   sync.Mutex
	out  strings.Builder
}

// startAgent builds and runs the skycall-agent binary as a process, with
// the ServiceAccount's kubeconfig, writing its token to file token, until
// stop or the end of the test.
func startAgent(t *testing.T, kubeconfig, ns, node, skynetAddr, token string, flags ...string) *agentProc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "skycall-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port, err := skynetpeer.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, append([]string{"--node", node, "--skynet", skynetAddr, "--listen", listen, "--interval", "200ms", "-v", "1",
		"--token-file", token}, flags...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE="+ns)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{t: t, base: "http://" + listen}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			a.mu.Lock()
			a.out.WriteString(sc.Text() + "\n")
			a.mu.Unlock()
		}
	}()
	a.stop = sync.OnceFunc(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		pw.Close()
		if t.Failed() {
			t.Logf("skycall-agent log:\n%s", a.logs())
		}
	})
	t.Cleanup(a.stop)
	return a
}

func (a *agentProc) logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.String()
}

func (a *agentProc) ready() bool {
	resp, err := http.Get(a.base + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func (a *agentProc) get(path string) string {
	a.t.Helper()
	resp, err := http.Get(a.base + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
