package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/test/localcp"
)

// TestKubernetesRegistryFromKubeconfig runs every command against
// ClusterNodes on a real kube-apiserver, found as kubectl finds things: the
// kubeconfig's current context and namespace, or -n.
func TestKubernetesRegistryFromKubeconfig(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real kube-apiserver and etcd (hack/control-plane.sh); not in -short")
	}
	cp, err := localcp.Start(localcp.Options{CRDDirs: []string{"config/crd/bases"}})
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	k8s, err := cp.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	db := startNode(t, "db")
	game := startNode(t, "game_3")
	const ns = "games"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// What the operator would have resolved: db and game_3 Ready (game_3
	// under a name that is not its object's), login waiting for
	// endpoints, old administratively down.
	create := func(cn *skycallv1.ClusterNode, ready bool, reason, msg string) {
		t.Helper()
		cn.Namespace = ns
		if err := k8s.Create(ctx, cn); err != nil {
			t.Fatal(err)
		}
		if reason == "" {
			return
		}
		cn.Status.NodeName = cn.Spec.NodeName
		if cn.Status.NodeName == "" {
			cn.Status.NodeName = cn.Name
		}
		status := metav1.ConditionFalse
		if ready {
			status = metav1.ConditionTrue
			cn.Status.Address = cn.Spec.Address
		}
		cn.Status.ObservedGeneration = cn.Generation
		meta.SetStatusCondition(&cn.Status.Conditions, metav1.Condition{
			Type: skycallv1.ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: cn.Generation,
		})
		if err := k8s.Status().Update(ctx, cn); err != nil {
			t.Fatal(err)
		}
	}
	create(&skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: skycallv1.ClusterNodeSpec{Address: db.addr}}, true, skycallv1.ReasonResolved, "fixed address")
	create(&skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Name: "game-3"}, Spec: skycallv1.ClusterNodeSpec{NodeName: "game_3", Address: game.addr}}, true, skycallv1.ReasonResolved, "fixed address")
	create(&skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Name: "login"}, Spec: skycallv1.ClusterNodeSpec{Service: &skycallv1.ServiceReference{Name: "login", Port: intstr.FromString("cluster")}}}, false, skycallv1.ReasonNoReadyEndpoints, "service login has no ready endpoints")
	create(&skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Name: "old"}, Spec: skycallv1.ClusterNodeSpec{Address: "10.0.0.9:2528", Down: true}}, false, skycallv1.ReasonAdministrativelyDown, "spec.down is set")

	// A kubeconfig whose current context's namespace is ns, as after
	// `kubectl config set-context --current --namespace games`.
	kc, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc.Contexts[kc.CurrentContext].Namespace = ns
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	addrs := map[string]string{db.addr: "DB_ADDR", game.addr: "GAME_ADDR"}

	r := skycall(t, "nodes").ok(t)
	golden(t, "nodes-kubernetes.table", normaliseTable(r.stdout, addrs))
	r = skycall(t, "nodes", "-o", "json").ok(t)
	golden(t, "nodes-kubernetes.json", hostPort.ReplaceAllString(normalise(r.stdout, addrs), "https://API_SERVER"))

	// -n, --kubeconfig and --context as kubectl has them.
	r = skycall(t, "--kubeconfig", cp.Kubeconfig, "--context", kc.CurrentContext, "-n", ns, "nodes", "-o", "yaml", "--probe=false").ok(t)
	if !strings.Contains(r.stdout, "name: game_3") || !strings.Contains(r.stdout, "registry: ClusterNodes of namespace games") {
		t.Fatalf("nodes -n %s:\n%s", ns, r.stdout)
	}
	if r := skycall(t, "-n", "default", "nodes"); r.code != 0 || strings.TrimSpace(r.stdout) != "NAME   STATE   ADDRESS   CONNECTION   RTT   REASON" {
		t.Fatalf("nodes -n default: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	skycall(t, "call", "game_3", "@store", "'set', 'k', {1, 2}").ok(t)
	if r := skycall(t, "call", "game_3", "@store", "'get', 'k'").ok(t); r.stdout != "{1, 2}\n" {
		t.Fatalf("call through ClusterNodes printed %q", r.stdout)
	}
	skycall(t, "send", "db", "@log", "'via kubernetes'").ok(t)
	eventually(t, "db logged the push", func() bool { return db.loggedCount() == 1 })
	if r := skycall(t, "query", "db", "store").ok(t); r.stdout != ":00000001\n" {
		t.Fatalf("query printed %q", r.stdout)
	}
	skycall(t, "ping", "game_3", "-c", "2", "-i", "0").ok(t)
	skycall(t, "bench", "db", "@echo", "'x'", "--count", "100", "-c", "2").ok(t)

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"call", "game-3", "@store"}, exitUnknownNode, `node "game-3" is not in the ClusterNodes of namespace games`},
		{[]string{"call", "login", "@store", "--timeout", "500ms"}, exitNodeDown, `(node resolving: not_ready: ClusterNode login: Ready=False NoReadyEndpoints: service login has no ready endpoints); it was not sent (node "login" stayed not ready`},
		{[]string{"send", "old", "@log"}, exitNodeDown, `node "old" is marked down in the ClusterNodes of namespace games`},
	} {
		r := skycall(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d; stderr %q, want %q", tc.args, r.code, tc.code, r.stderr, tc.want)
		}
	}

	// A user who may not read ClusterNodes is told so, with exit 8.
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nobody"}}); err != nil {
		t.Fatal(err)
	}
	nobody, err := cp.ServiceAccountKubeconfig(ctx, ns, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"nodes"}, {"call", "db", "@store"}} {
		r := skycall(t, append([]string{"--kubeconfig", nobody}, args...)...)
		if r.code != exitRegistry || !strings.Contains(r.stderr, "registry unavailable") || !strings.Contains(r.stderr, "forbidden") {
			t.Errorf("%v as a ServiceAccount without RBAC: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if testing.Verbose() {
			t.Logf("%v: %s", args, r.stderr)
		}
	}

	// nodes --watch follows the ClusterNodes: login becomes Ready (as the
	// operator would write it), game-3 is deleted.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(wctx, []string{"nodes", "--watch", "--watch-interval", "100ms", "-o", "json"}, streams{in: strings.NewReader(""), out: &out, errOut: &errOut}, "skycall")
	}()
	eventually(t, "the first listing", func() bool { return strings.Count(out.String(), "\n") >= 4 })
	login := startNode(t, "login")
	var cn skycallv1.ClusterNode
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "login"}, &cn); err != nil {
		t.Fatal(err)
	}
	cn.Status.Address = login.addr
	meta.SetStatusCondition(&cn.Status.Conditions, metav1.Condition{
		Type: skycallv1.ConditionReady, Status: metav1.ConditionTrue, Reason: skycallv1.ReasonResolved, Message: "endpoint ready", ObservedGeneration: cn.Generation,
	})
	if err := k8s.Status().Update(ctx, &cn); err != nil {
		t.Fatal(err)
	}
	eventually(t, "login shows ready and connected", func() bool {
		return strings.Contains(out.String(), `{"name":"login","state":"ready","address":"`+login.addr+`","connection":"ready"`)
	})
	if err := k8s.Delete(ctx, &skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "game-3"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "game_3 shows absent", func() bool { return strings.Contains(out.String(), `{"name":"game_3","state":"absent"}`) })
	stopWatch()
	if code := <-done; code != 0 {
		t.Fatalf("nodes --watch exit %d: %s", code, errOut.String())
	}
}
