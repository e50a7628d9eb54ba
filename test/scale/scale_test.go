// Package scale measures the operator at scale on the local control plane:
// how long N ClusterNodes take to be Ready and in the registry, the
// manager's peak memory, and the registry's size. It is a benchmark (make
// bench), not a test: targets are reported, not asserted.
package scale

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/test/localcp"
)

// BenchmarkOperatorScale: run with -benchtime=1x; SKYCALL_SCALE_NODES sets N
// (default 10000).
func BenchmarkOperatorScale(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("SKYCALL_SCALE_NODES")); err == nil && v > 0 {
		n = v
	}
	k8s, mgr := startOperator(b)

	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "scale"}}
	if err := k8s.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				node := &skycallv1.ClusterNode{
					ObjectMeta: metav1.ObjectMeta{Namespace: "scale", Name: fmt.Sprintf("node-%05d", i)},
					Spec:       skycallv1.ClusterNodeSpec{Address: fmt.Sprintf("10.%d.%d.%d:2526", i>>16&255, i>>8&255, i&255)},
				}
				if err := k8s.Create(ctx, node); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	created := time.Since(start)

	var size int
	deadline := time.Now().Add(10 * time.Minute)
	for {
		ready, bytes, err := registryReady(ctx, k8s, "scale")
		if err == nil && ready == n {
			size = bytes
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after %v only %d of %d nodes are ready in the registry (%v)", time.Since(start), ready, n, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	allReady := time.Since(start)
	b.StopTimer()
	rss := peakRSS(mgr.Pid())

	b.ReportMetric(allReady.Seconds(), "s-to-ready")
	b.ReportMetric(float64(rss)/(1<<20), "MiB-rss")
	b.ReportMetric(float64(size), "registry-bytes")
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	b.Logf("%d ClusterNodes: created in %v; all Ready and in the registry after %v [%s, target 60s]",
		n, created.Round(time.Millisecond), allReady.Round(time.Millisecond), verdict(allReady <= time.Minute))
	b.Logf("manager peak RSS %.1f MiB [%s, target 256 MiB]; registry %d bytes [%s, limit %d]",
		float64(rss)/(1<<20), verdict(rss <= 256<<20), size, verdict(size <= registry.ConfigMapMaxBytes), registry.ConfigMapMaxBytes)
}

// startOperator starts the local control plane and the manager built from
// ./cmd/manager as a process, as a cluster runs it; both stop with b.
func startOperator(b *testing.B) (client.Client, *localcp.Process) {
	b.Helper()
	cp, err := localcp.Start(localcp.Options{CRDDirs: []string{"config/crd/bases"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cp.Stop() })
	k8s, err := cp.Client()
	if err != nil {
		b.Fatal(err)
	}

	manager := filepath.Join(cp.Dir, "manager")
	build := exec.Command("go", "build", "-o", manager, "./cmd/manager")
	build.Dir = cp.Root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	mgr, err := localcp.StartProcess("manager", filepath.Join(cp.Dir, "manager.log"), nil,
		[]string{"KUBECONFIG=" + cp.Kubeconfig}, manager, "--metrics-bind-address=0", "--health-probe-bind-address=0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(mgr.Stop)
	return k8s, mgr
}

// registryReady counts the ready nodes in a namespace's nodes.json and
// returns the size of the registry's data.
func registryReady(ctx context.Context, k8s client.Client, ns string) (int, int, error) {
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: registry.ConfigMapName}, &cm); err != nil {
		return 0, 0, err
	}
	doc, err := registry.ParseNodesJSON([]byte(cm.Data[registry.ConfigMapJSONKey]))
	if err != nil {
		return 0, 0, err
	}
	return len(doc.Ready), len(cm.Data[registry.ConfigMapJSONKey]) + len(cm.Data[registry.ConfigMapLuaKey]), nil
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
