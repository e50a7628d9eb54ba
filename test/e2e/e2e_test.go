// Package e2e tests skycall the way a user meets it: the Helm chart
// installed into a real kube-apiserver, the operator running as a process
// with the chart's ServiceAccount (there is no kubelet to run its pod), the
// samples applied with kubectl, and sender and node processes on loopback.
package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/test/cluster"
	"github.com/skycall-io/skycall/test/localcp"
)

var (
	cp      *localcp.ControlPlane
	binDir  string
	verbose = os.Getenv("SKYCALL_TEST_VERBOSE") != ""
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	cp, err = localcp.Start(localcp.Options{})
	if err != nil {
		return 1, err
	}
	defer cp.Stop()
	binDir = filepath.Join(cp.Dir, "bin")
	for _, pkg := range []string{"./cmd/manager", "./cmd/skycall-demo"} {
		cmd := exec.Command("go", "build", "-o", binDir+"/", pkg)
		cmd.Dir = cp.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return m.Run(), nil
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cp.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cp.Helm(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func start(t *testing.T, name, logFile string, env []string, args ...string) *localcp.Process {
	t.Helper()
	var echo io.Writer
	if verbose {
		echo = os.Stderr
	}
	bin := filepath.Join(binDir, "skycall-demo")
	if name == "manager" {
		bin = filepath.Join(binDir, "manager")
	}
	p, err := localcp.StartProcess(name, logFile, echo, env, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitReason waits until a ClusterNode's Ready reason is want.
func waitReason(t *testing.T, ns, name, want string) {
	t.Helper()
	kubectl(t, "wait", "-n", ns, fmt.Sprintf(`--for=jsonpath={.status.conditions[?(@.type=="Ready")].reason}=%s`, want),
		"clusternode/"+name, "--timeout=60s")
}

// TestChartInstallSamplesSenderAndUninstall walks the user's journey.
func TestChartInstallSamplesSenderAndUninstall(t *testing.T) {
	const system = "skycall-system"
	for _, ns := range []string{"app", "other"} {
		kubectl(t, "create", "namespace", ns)
		// No controller manager runs here to create it.
		kubectl(t, "create", "serviceaccount", "default", "-n", ns)
	}

	// helm install: CRD, RBAC, ServiceAccount, Deployment (which nothing runs
	// here), and the sender RoleBinding for namespace app.
	helm(t, "install", "skycall", "charts/skycall", "-n", system, "--create-namespace",
		"--set", "sender.namespaces={app}", "--wait=false")
	kubectl(t, "wait", "--for=condition=Established", "crd/clusternodes.cluster.skycall.io", "--timeout=60s")

	// The operator runs with the chart's ServiceAccount token: the chart's
	// RBAC is all it has.
	managerKubeconfig, err := cp.ServiceAccountKubeconfig(context.Background(), system, "skycall-manager")
	if err != nil {
		t.Fatal(err)
	}
	managerLog := filepath.Join(cp.Dir, "manager.log")
	metricsAddr := freeAddr(t)
	mgr := start(t, "manager", managerLog, []string{"KUBECONFIG=" + managerKubeconfig},
		"--metrics-bind-address="+metricsAddr, "--health-probe-bind-address=0", "--leader-elect", "--leader-election-namespace="+system)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(managerLog); err == nil {
				t.Logf("manager log:\n%s", b)
			}
		}
	})

	// Least privilege: the manager may write ClusterNode status and
	// ConfigMaps, ClusterNodes themselves (a ClusterNodeSet creates,
	// updates and deletes its own) and ClusterNodeSet status, and nothing
	// it does not use.
	as := "--as=system:serviceaccount:" + system + ":skycall-manager"
	for verb, allowed := range map[string]bool{
		"update clusternodes.cluster.skycall.io --subresource=status":    true,
		"create configmaps -n app":                                       true,
		"watch endpointslices.discovery.k8s.io":                          true,
		"create clusternodes.cluster.skycall.io":                         true,
		"delete clusternodes.cluster.skycall.io":                         true,
		"update clusternodesets.cluster.skycall.io --subresource=status": true,
		"update clusternodesets.cluster.skycall.io":                      false,
		"delete clusternodesets.cluster.skycall.io":                      false,
		"create tokenreviews.authentication.k8s.io":                      true,
		"create subjectaccessreviews.authorization.k8s.io":               true,
		"get secrets -n app":                                             false,
		"create pods -n app":                                             false,
		"delete services -n app":                                         false,
	} {
		args := append([]string{"auth", "can-i", as}, strings.Fields(verb)...)
		out, _ := cp.Kubectl(context.Background(), args...) // exits 1 for "no"
		if got := strings.TrimSpace(out) == "yes"; got != allowed {
			t.Errorf("manager ServiceAccount: can-i %s = %q, want allowed=%v", verb, strings.TrimSpace(out), allowed)
		}
	}

	scrape := checkMetricsEndpoint(t, system, "https://"+metricsAddr+"/metrics")

	// kubectl apply the samples: statuses and registry as documented.
	kubectl(t, "apply", "-n", "app", "-k", "config/samples")
	waitReason(t, "app", "db", "Resolved")
	waitReason(t, "app", "login", "AdministrativelyDown")
	waitReason(t, "app", "game-1", "NoReadyEndpoints")
	lua := waitRegistry(t, "app", `db = "10.0.0.7:2528"`+"\n"+`login = false`)
	if strings.Contains(lua, "game_1") {
		t.Errorf("game_1 is not ready and must have no line:\n%s", lua)
	}
	// The operator's metrics count the samples by their Ready reason.
	for _, want := range []string{
		`skycall_operator_clusternodes{namespace="app",reason="Resolved",status="True"} 1`,
		`skycall_operator_clusternodes{namespace="app",reason="AdministrativelyDown",status="False"} 1`,
		`skycall_operator_clusternodes{namespace="app",reason="NoReadyEndpoints",status="False"} 1`,
		`skycall_operator_registry_bytes{namespace="app"}`,
	} {
		// The counts follow the statuses within one registry pass.
		body, deadline := scrape(), time.Now().Add(30*time.Second)
		for !strings.Contains(body, want) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			body = scrape()
		}
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(body, "skycall_operator_"))
		}
	}

	// A node process and a ClusterNode for it in namespace app.
	node := start(t, "store", "", nil, "node", "--name", "store")
	m, err := node.WaitLine(within(t, 10*time.Second), regexp.MustCompile(`^listening on (\S+)$`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.KubectlStdin(context.Background(), fmt.Sprintf(
		"apiVersion: cluster.skycall.io/v1\nkind: ClusterNode\nmetadata:\n  name: store\nspec:\n  address: %q\n", m[1]),
		"apply", "-n", "app", "-f", "-"); err != nil {
		t.Fatal(err)
	}

	// A sender in namespace app with only the skycall-sender role resolves
	// the node and delivers its sends and calls, in order.
	appKubeconfig, err := cp.ServiceAccountKubeconfig(context.Background(), "app", "default")
	if err != nil {
		t.Fatal(err)
	}
	snd := start(t, "sender", "", []string{"KUBECONFIG=" + appKubeconfig, "POD_NAMESPACE=app"},
		"send", "--to", "store", "--count", "8", "--timeout", "60s")
	if err := snd.Wait(within(t, 90*time.Second)); err != nil {
		t.Fatalf("sender in namespace app: %v\noutput: %s", err, strings.Join(snd.Output(), "\n"))
	}
	// The node printed each line before its reply, but its output reaches
	// us through a pipe, a little after: wait for the last line first (a
	// run on a busy machine compared too early and saw 3 of the 8).
	if _, err := node.WaitLine(within(t, 10*time.Second), regexp.MustCompile(`^received call \[msg 8\]$`)); err != nil {
		t.Log(err)
	}
	var order []string
	for _, l := range node.Output() {
		if strings.HasPrefix(l, "received ") {
			order = append(order, l)
		}
	}
	want := []string{}
	for i := 1; i <= 8; i++ {
		kind := "send"
		if i%2 == 0 {
			kind = "call"
		}
		want = append(want, fmt.Sprintf("received %s [msg %d]", kind, i))
	}
	if strings.Join(order, "\n") != strings.Join(want, "\n") {
		t.Errorf("node received\n%s\nwant\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}

	// A sender in namespace other has no role: a clear permission error,
	// well before its own timeout.
	otherKubeconfig, err := cp.ServiceAccountKubeconfig(context.Background(), "other", "default")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "skycall-demo"), "send", "--to", "store", "--count", "2", "--timeout", "60s")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+otherKubeconfig, "POD_NAMESPACE=other")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a sender without the skycall-sender role hung instead of failing:\n%s", out)
	}
	if err == nil {
		t.Fatalf("a sender without the skycall-sender role succeeded:\n%s", out)
	}
	t.Logf("sender without the role failed after %v: %s", time.Since(began).Round(time.Millisecond), strings.TrimSpace(string(out)))
	for _, frag := range []string{"forbidden", "clusternodes", "other"} {
		if !strings.Contains(strings.ToLower(string(out)), frag) {
			t.Errorf("permission error should mention %q:\n%s", frag, out)
		}
	}

	// helm uninstall keeps the CRD (and so the ClusterNodes) and removes the rest.
	mgr.Stop()
	helm(t, "uninstall", "skycall", "-n", system)
	kubectl(t, "get", "crd", "clusternodes.cluster.skycall.io")
	kubectl(t, "get", "clusternode", "db", "-n", "app")
	for _, obj := range []string{
		"deployment/skycall-manager -n " + system,
		"serviceaccount/skycall-manager -n " + system,
		"service/skycall-manager-metrics -n " + system,
		"clusterrole/skycall-manager",
		"clusterrole/skycall-sender",
		"clusterrole/skycall-metrics-reader",
		"clusterrole/skycall-view",
		"clusterrolebinding/skycall-manager",
		"rolebinding/skycall-sender -n app",
	} {
		args := append([]string{"get", "--ignore-not-found", "-o", "name"}, strings.Fields(obj)...)
		if out := kubectl(t, args...); strings.TrimSpace(out) != "" {
			t.Errorf("helm uninstall left %s", obj)
		}
	}
}

// TestKustomizeDefaultApplies: `kubectl apply -k config/default` installs
// the operator's objects (after the chart above, or alone).
func TestKustomizeDefaultApplies(t *testing.T) {
	out := kubectl(t, "apply", "-k", "config/default")
	for _, want := range []string{"customresourcedefinition.apiextensions.k8s.io/clusternodes.cluster.skycall.io",
		"deployment.apps/skycall-manager", "clusterrole.rbac.authorization.k8s.io/skycall-sender"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -k config/default output lacks %s:\n%s", want, out)
		}
	}
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					ServiceAccountName string `json:"serviceAccountName"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	raw := kubectl(t, "get", "deployment", "skycall-manager", "-n", "skycall-system", "-o", "json")
	if err := json.Unmarshal([]byte(raw), &dep); err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Template.Spec.ServiceAccountName != "skycall-manager" {
		t.Errorf("deployment runs as %q, want skycall-manager", dep.Spec.Template.Spec.ServiceAccountName)
	}
}

func waitRegistry(t *testing.T, ns, wantLines string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var lua string
	for time.Now().Before(deadline) {
		out, err := cp.Kubectl(context.Background(), "get", "configmap", "skycall-registry", "-n", ns, "-o", `jsonpath={.data.clustername\.lua}`)
		if err == nil {
			lua = out
			var lines []string
			for _, l := range strings.Split(out, "\n") {
				if l != "" && !strings.HasPrefix(l, "--") {
					lines = append(lines, l)
				}
			}
			if strings.Join(lines, "\n") == wantLines {
				return out
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("registry of %s is\n%s\nwant lines\n%s", ns, lua, wantLines)
	return ""
}

// TestLongLivedSenderQueuesUntilTheNodeIsBackAndKeepsOrder drives
// `skycall-demo sender` (the sender pod of the cluster tests and `make
// demo-cluster`) on loopback: one client for its life, batches numbered on
// from the last, messages to a node whose process was replaced waiting in
// its queue until the ClusterNode points at the new one.
func TestLongLivedSenderQueuesUntilTheNodeIsBackAndKeepsOrder(t *testing.T) {
	const ns = "relay"
	// The CRD, unless the chart's (kept after uninstall) is already there:
	// helm would refuse to adopt one kubectl made.
	if strings.TrimSpace(kubectl(t, "get", "crd", "--ignore-not-found", "-o", "name", "clusternodes.cluster.skycall.io")) == "" {
		kubectl(t, "apply", "-f", "config/crd/bases")
	}
	kubectl(t, "wait", "--for=condition=Established", "crd/clusternodes.cluster.skycall.io", "--timeout=60s")
	kubectl(t, "create", "namespace", ns)
	start(t, "manager", filepath.Join(cp.Dir, "relay-manager.log"), []string{"KUBECONFIG=" + cp.Kubeconfig},
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--namespaces="+ns)
	listening := regexp.MustCompile(`^listening on (\S+)$`)
	startNode := func() (*localcp.Process, string) {
		node := start(t, "relay", "", nil, "node", "--name", "relay")
		m, err := node.WaitLine(within(t, 10*time.Second), listening)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cp.KubectlStdin(context.Background(), fmt.Sprintf(
			"apiVersion: cluster.skycall.io/v1\nkind: ClusterNode\nmetadata:\n  name: relay\nspec:\n  address: %q\n", m[1]),
			"apply", "-n", ns, "-f", "-"); err != nil {
			t.Fatal(err)
		}
		return node, m[1]
	}
	node, _ := startNode()
	waitReason(t, ns, "relay", "Resolved")

	snd := start(t, "sender", "", []string{"KUBECONFIG=" + cp.Kubeconfig, "POD_NAMESPACE=" + ns},
		"sender", "--listen", "127.0.0.1:0")
	m, err := snd.WaitLine(within(t, 10*time.Second), regexp.MustCompile(`^sender listening on (\S+) `))
	if err != nil {
		t.Fatal(err)
	}
	addr := m[1]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sender output:\n%s", strings.Join(snd.Output(), "\n"))
			if b, err := os.ReadFile(filepath.Join(cp.Dir, "relay-manager.log")); err == nil {
				t.Logf("manager log:\n%s", b)
			}
		}
	})
	batch := func(first, count int) []string {
		t.Helper()
		lines, err := cluster.SenderBatch(within(t, 90*time.Second), addr, "relay", first, count)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for l := range lines {
			out = append(out, l)
		}
		if len(out) == 0 || out[len(out)-1] != "all replies received" {
			t.Fatalf("batch %d..%d did not get every reply:\n%s", first, first+count-1, strings.Join(out, "\n"))
		}
		return out
	}
	// received is what node printed it received, once it has printed n
	// lines: its output reaches us through a pipe, a little after the reply.
	received := func(p *localcp.Process, n int) []string {
		t.Helper()
		var got []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			got = got[:0]
			for _, l := range p.Output() {
				if strings.HasPrefix(l, "received ") {
					got = append(got, strings.TrimPrefix(l, "received "))
				}
			}
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
		}
	}
	want := func(first, count int) []string {
		var w []string
		for i := first; i < first+count; i++ {
			kind := "send"
			if i%2 == 0 {
				kind = "call"
			}
			w = append(w, fmt.Sprintf("%s [msg %d]", kind, i))
		}
		return w
	}

	batch(1, 4)
	batch(5, 4)
	if got := received(node, 8); strings.Join(got, ",") != strings.Join(want(1, 8), ",") {
		t.Fatalf("node received %q, want %q", got, want(1, 8))
	}
	if s := cluster.SenderState(context.Background(), addr, "relay"); s != "ready" {
		t.Errorf("sender's state for relay after two batches: %q, want ready", s)
	}

	// The node process goes and the ClusterNode with it; messages issued
	// now wait; a new process and ClusterNode take them, in order.
	node.Stop()
	kubectl(t, "delete", "clusternode", "relay", "-n", ns)
	deadline := time.Now().Add(30 * time.Second)
	for s := cluster.SenderState(context.Background(), addr, "relay"); s == "ready"; s = cluster.SenderState(context.Background(), addr, "relay") {
		if time.Now().After(deadline) {
			t.Fatal("the sender still reports relay ready 30s after its process stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines, err := cluster.SenderBatch(within(t, 90*time.Second), addr, "relay", 9, 6)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range lines {
		out = append(out, l)
		if strings.HasPrefix(l, "relay: 6 message(s) waiting in its queue") {
			break
		}
		if strings.Contains(l, "replied") {
			t.Fatalf("a call was answered with no node to answer it:\n%s", strings.Join(out, "\n"))
		}
	}
	replacement, _ := startNode()
	for l := range lines {
		out = append(out, l)
	}
	if out[len(out)-1] != "all replies received" {
		t.Fatalf("the queued batch did not get every reply:\n%s", strings.Join(out, "\n"))
	}
	if got := received(replacement, 6); strings.Join(got, ",") != strings.Join(want(9, 6), ",") {
		t.Errorf("the replacement node received %q, want %q", got, want(9, 6))
	}

	// Bad requests are refused, not guessed at.
	resp, err := http.Get("http://" + addr + "/send?to=relay&first=0&count=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("/send with first=0: %s, want 400", resp.Status)
	}
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// checkMetricsEndpoint: the manager's metrics endpoint (HTTPS with the
// chart's defaults) refuses a scrape without a token and one whose
// ServiceAccount lacks the chart's metrics-reader ClusterRole, and serves a
// ServiceAccount bound to it; `manager check` (what `helm test` runs)
// passes with that ServiceAccount.
// It returns a scrape as the authorized ServiceAccount.
func checkMetricsEndpoint(t *testing.T, system, url string) (scrape func() string) {
	t.Helper()
	kubectl(t, "create", "serviceaccount", "scraper", "-n", system)
	kubectl(t, "create", "serviceaccount", "stranger", "-n", system)
	kubectl(t, "create", "clusterrolebinding", "scraper-metrics", "--clusterrole=skycall-metrics-reader", "--serviceaccount="+system+":scraper")
	// `manager check` also reads the CRD, as the chart's test ServiceAccount may.
	kubectl(t, "create", "clusterrole", "scraper-crd", "--verb=get", "--resource=customresourcedefinitions")
	kubectl(t, "create", "clusterrolebinding", "scraper-crd", "--clusterrole=scraper-crd", "--serviceaccount="+system+":scraper")
	t.Cleanup(func() {
		_, _ = cp.Kubectl(context.Background(), "delete", "clusterrolebinding", "scraper-metrics", "scraper-crd", "--ignore-not-found")
		_, _ = cp.Kubectl(context.Background(), "delete", "clusterrole", "scraper-crd", "--ignore-not-found")
	})
	token := func(sa string) string {
		out := kubectl(t, "create", "token", sa, "-n", system, "--duration=1h")
		return strings.TrimSpace(out)
	}
	// The certificate is self-signed (what this checks is who is let in).
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	scraperToken := token("scraper")
	for _, tc := range []struct {
		who, token string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		// controller-runtime answers 500 when the TokenReview itself errs
		// (a token that is no JWT): a refusal all the same.
		{"a forged token", "not-a-token", 0},
		{"a ServiceAccount without metrics-reader", token("stranger"), http.StatusForbidden},
		{"a ServiceAccount bound to metrics-reader", scraperToken, http.StatusOK},
	} {
		var code int
		var body string
		var err error
		deadline := time.Now().Add(60 * time.Second)
		for {
			// The manager may still be starting (connection refused).
			if code, body, err = get(tc.token); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("scrape %s as %s: %v", url, tc.who, err)
		}
		if code != tc.want && (tc.want != 0 || code < 400) {
			t.Errorf("scrape as %s: HTTP %d, want %d: %.200s", tc.who, code, tc.want, body)
		}
		if code == http.StatusOK && !strings.Contains(body, "skycall_operator_endpointslice_to_registry_seconds") {
			t.Errorf("authorized scrape lacks skycall's operator metrics:\n%.2000s", body)
		}
		if code != http.StatusOK && strings.Contains(body, "skycall_operator") {
			t.Errorf("scrape as %s leaked metrics", tc.who)
		}
	}

	// Plain HTTP gets nothing either.
	if resp, err := hc.Get(strings.Replace(url, "https://", "http://", 1)); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "skycall_operator") {
			t.Errorf("plain HTTP scrape served metrics")
		}
	}

	scraper, err := cp.ServiceAccountKubeconfig(context.Background(), system, "scraper")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "manager"), "check", "--metrics-url="+url, "--timeout=60s")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+scraper)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("manager check (what helm test runs) failed: %v\n%s", err, out)
	}
	return func() string {
		_, body, err := get(scraperToken)
		if err != nil {
			t.Fatalf("scrape %s: %v", url, err)
		}
		return body
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
