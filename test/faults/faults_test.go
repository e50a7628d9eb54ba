// Package faults breaks the control plane under a running skycall: the real
// kube-apiserver and etcd (hack/control-plane.sh) are stopped and started
// again while the operator runs as its own process (the cmd/manager binary)
// and senders call nodes on loopback. Each test checks what a user would
// notice: how soon a change reaches ClusterNode status once the API server
// is ready, how long leader failover takes, and that calls keep flowing.
// docs/reliability.md lists the figures.
package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/skycall-io/skycall/test/localcp"
)

var (
	cp      *localcp.ControlPlane
	k8s     client.Client
	manager string // the cmd/manager binary
	verbose = os.Getenv("SKYCALL_TEST_VERBOSE") != ""
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	cp, err = localcp.Start(localcp.Options{CRDDirs: []string{"config/crd/bases"}})
	if err != nil {
		return 1, err
	}
	defer cp.Stop()
	manager = filepath.Join(cp.Dir, "bin", "manager")
	cmd := exec.Command("go", "build", "-o", manager, "./cmd/manager")
	cmd.Dir = cp.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("go build ./cmd/manager: %v\n%s", err, out)
	}
	if k8s, err = cp.Client(); err != nil {
		return 1, err
	}
	return m.Run(), nil
}

// managerProc is one operator process; its log (standard error) is kept in
// a file so that a test can tell which replica leads.
type managerProc struct {
	*localcp.Process
	log string
}

// startManager runs the operator binary as the administrator with the
// given extra flags; it is stopped when the test ends.
func startManager(t *testing.T, name string, args ...string) *managerProc {
	t.Helper()
	logFile := filepath.Join(cp.Dir, fmt.Sprintf("%s-%s.log", strings.ReplaceAll(t.Name(), "/", "_"), name))
	args = append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}, args...)
	p, err := localcp.StartProcess(name, logFile, nil, []string{"KUBECONFIG=" + cp.Kubeconfig}, manager, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() || verbose {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("%s log:\n%s", name, b)
			}
		}
	})
	return &managerProc{Process: p, log: logFile}
}

// logged reports whether the manager's log has a line matching re.
func (m *managerProc) logged(re *regexp.Regexp) bool {
	b, _ := os.ReadFile(m.log)
	return re.Match(b)
}

// exited reports whether the process has exited.
func (m *managerProc) exited() bool {
	select {
	case <-m.Done():
		return true
	default:
		return false
	}
}

// restartAPIServer stops kube-apiserver, keeps it down for outage, starts
// it again and returns when it answers /healthz.
func restartAPIServer(t *testing.T, outage time.Duration) time.Time {
	t.Helper()
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage) // the fault itself, not a wait for a condition
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
