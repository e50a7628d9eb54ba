package main

import (
	"context"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// TestRelayModeCarriesSkynetThroughAMoveWithoutAReload runs the agent with
// --relay beside a real skynet node: skynet's config points node "go" at
// the agent's loopback relay, and stays so while "go" goes not ready (its
// pod replaced: draining) and comes back at another address. skynet's calls and
// pushes made meanwhile wait in the relay and arrive, in order, at the new
// address; skynet is never reloaded for the move.
func TestRelayModeCarriesSkynetThroughAMoveWithoutAReload(t *testing.T) {
	ctx, k8s, ns, kubeconfig := skynetNamespace(t)

	// Two processes of node "go" (the relay's Client checks the name), the
	// old pod's and the new one's, telling themselves apart by @who.
	goA, goB := whoNode(t, "go", "a"), whoNode(t, "go", "b")
	goCN := readyNode(t, k8s, ns, "go", goA)
	token := filepath.Join(t.TempDir(), "token")
	sky := startSky(t, "sky1", 0, token)
	c := sender.New(registry.NewStatic(map[string]string{"sky1": sky.Addr}), sender.WithLogger(testr.New(t)),
		sender.WithBackoff(20*time.Millisecond, 300*time.Millisecond))
	t.Cleanup(func() { c.Close() })
	drive := func(d time.Duration, args ...any) []any {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, d)
		defer ccancel()
		got, err := c.CallValues(cctx, "sky1", "@driver", args...)
		if err != nil {
			return []any{false, err.Error()}
		}
		return got
	}

	agent := startAgent(t, kubeconfig, ns, "sky1", sky.Addr, token, "--relay", "--relay-wait", "30s")
	eventually(t, "the agent ready", func() bool { return agent.ready() })
	if got := drive(10*time.Second, "call", "go", "@who"); !reflect.DeepEqual(got, []any{true, "a"}) {
		t.Fatalf("skynet -> go through the relay: %#v", got)
	}
	applied := regexp.MustCompile(`skycall_agent_config_generation_applied (\d+)\n`).FindStringSubmatch(agent.get("/metrics"))
	if applied == nil {
		t.Fatalf("no applied generation in the agent's metrics")
	}

	// The pod behind "go" is replaced: draining (terminating) for a while,
	// then ready at another address. skynet calls meanwhile.
	setDraining(t, k8s, goCN, goA)
	time.Sleep(300 * time.Millisecond) // the relay's Client sees it
	results := make(chan []any, 3)
	go func() { results <- drive(20*time.Second, "call", "go", "@echo", "during the move") }()
	go func() { results <- drive(20*time.Second, "call", "go", "@who") }()
	time.Sleep(time.Second)
	select {
	case r := <-results:
		t.Fatalf("a call returned while its node was not ready: %#v", r)
	default:
	}
	setReady(t, k8s, goCN, goB)
	for range 2 {
		select {
		case r := <-results:
			if r[0] != true {
				t.Errorf("a call made during the move failed: %#v", r)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a call made during the move never returned")
		}
	}
	if got := drive(5*time.Second, "call", "go", "@who"); !reflect.DeepEqual(got, []any{true, "b"}) {
		t.Fatalf("after the move skynet reaches %#v, want the new process b", got)
	}
	m := agent.get("/metrics")
	if now := regexp.MustCompile(`skycall_agent_config_generation_applied (\d+)\n`).FindStringSubmatch(m); now == nil || now[1] != applied[1] {
		t.Errorf("skynet's config generation went from %s to %v across the move, want no reload", applied[1], now)
	}
	if !regexp.MustCompile(`skycall_relay_forwarded_total\{kind="call",node="go"\} [3-9]`).MatchString(m) {
		t.Errorf("relay metrics lack the calls to go:\n%s", grep(m, "skycall_relay_"))
	}
}

// whoNode is a skycall Server of node name whose @who answers who and
// whose @echo echoes; it returns its address.
func whoNode(t *testing.T, name, who string) string {
	t.Helper()
	s := server.New(name)
	sendertest.Handle(t, s, "@echo", sendertest.Echo)
	sendertest.Handle(t, s, "@who", func(context.Context, *server.Request) ([]byte, error) { return luaseri.Pack(who) })
	return sendertest.Serve(t, s)
}

// setDraining writes cn's status as the operator does while its pod at addr
// terminates: no ready address, the old endpoint terminating.
func setDraining(t *testing.T, k8s client.Client, cn *skycallv1.ClusterNode, addr string) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(cn), cn); err != nil {
		t.Fatal(err)
	}
	cn.Status.Address = ""
	cn.Status.Endpoints = []skycallv1.Endpoint{{Address: addr, Terminating: true}}
	cn.Status.ObservedGeneration = cn.Generation
	meta.SetStatusCondition(&cn.Status.Conditions, metav1.Condition{
		Type: skycallv1.ConditionReady, Status: metav1.ConditionFalse, Reason: skycallv1.ReasonDraining,
		Message: "set by the test", ObservedGeneration: cn.Generation,
	})
	if err := k8s.Status().Update(ctx, cn); err != nil {
		t.Fatal(err)
	}
}

// TestRelayModeWithMutualTLSBetweenPods runs two skynet nodes, each with
// its agent in relay mode and mutual TLS: the ClusterNodes name each
// agent's TLS port, so sky1's call to sky2 goes sky1 -> its relay -> TLS
// -> sky2's agent -> sky2, with skynet speaking plain TCP on loopback
// only. A peer without a certificate from the CA gets nothing.
func TestRelayModeWithMutualTLSBetweenPods(t *testing.T) {
	ctx, k8s, ns, kubeconfig := skynetNamespace(t)
	ca := testkit.NewCA(t)

	tlsAddr, skyAddr := map[string]string{}, map[string]string{}
	for i, node := range []string{"sky1", "sky2"} {
		port, err := skynetpeer.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		tlsAddr[node] = "127.0.0.1:" + strconv.Itoa(port)
		readyNode(t, k8s, ns, node, tlsAddr[node])
		files := ca.Files(t, t.TempDir(), node, int64(10+i))
		token := filepath.Join(t.TempDir(), "token")
		sky := startSky(t, node, 0, token)
		skyAddr[node] = sky.Addr
		agent := startAgent(t, kubeconfig, ns, node, sky.Addr, token, "--relay",
			"--relay-tls-cert", files.Cert, "--relay-tls-key", files.Key, "--relay-tls-ca", files.Bundle, "--relay-tls-listen", tlsAddr[node])
		eventually(t, node+"'s agent ready", func() bool { return agent.ready() })
		if node == "sky1" {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("sky1's agent:\n%s", agent.logs())
				}
			})
		}
	}
	c := sender.New(registry.NewStatic(map[string]string{"sky1": skyAddr["sky1"]}), sender.WithLogger(testr.New(t)))
	t.Cleanup(func() { c.Close() })
	eventually(t, "sky1 calls sky2 through the relays and mutual TLS", func() bool {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		got, err := c.CallValues(cctx, "sky1", "@driver", "call", "sky2", "@echo", "over tls")
		return err == nil && reflect.DeepEqual(got, []any{true, "over tls"})
	})

	// A Client without a certificate reaches nothing at sky2's TLS port.
	plain := sender.New(registry.NewStatic(map[string]string{"sky2": tlsAddr["sky2"]}), sender.WithConnectTimeout(time.Second))
	t.Cleanup(func() { plain.Close() })
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	if got, err := plain.CallValues(pctx, "sky2", "@echo", "x"); err == nil {
		t.Errorf("a plain Client got %v through sky2's mutual TLS port", got)
	}
}
