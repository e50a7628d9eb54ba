package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/sender/clusterconfig"
	"github.com/skycall-io/skycall/sender/clusterconfig/clusterconfigtest"
)

// The API server itself rejects bad ClusterNodes (CRD schema and CEL rules),
// with a message that says what to fix.
func TestBadClusterNodesAreRejected(t *testing.T) {
	ns := newNamespace(t)
	svc := func(name string, port intstr.IntOrString, pod string) *skycallv1.ServiceReference {
		return &skycallv1.ServiceReference{Name: name, Port: port, Pod: pod}
	}
	cases := []struct {
		name string
		spec skycallv1.ClusterNodeSpec
		want string
	}{
		{"neither address nor service", skycallv1.ClusterNodeSpec{}, "exactly one of spec.address or spec.service"},
		{"both address and service", skycallv1.ClusterNodeSpec{Address: "10.0.0.1:1", Service: svc("s", intstr.FromInt32(1), "")}, "exactly one of spec.address or spec.service"},
		{"address without port", skycallv1.ClusterNodeSpec{Address: "db.example.com"}, "address must be host:port"},
		{"address with scheme", skycallv1.ClusterNodeSpec{Address: "tcp://db:1"}, "address must be host:port"},
		{"address port zero", skycallv1.ClusterNodeSpec{Address: "db:0"}, "port must be between 1 and 65535"},
		{"address port too big", skycallv1.ClusterNodeSpec{Address: "db:70000"}, "port must be between 1 and 65535"},
		{"bad IPv4", skycallv1.ClusterNodeSpec{Address: "10.0.0.300:80"}, "invalid IPv4"},
		{"bad IPv6", skycallv1.ClusterNodeSpec{Address: "[fd00::zz]:80"}, "address must be host:port"},
		{"IPv6 without brackets", skycallv1.ClusterNodeSpec{Address: "fd00::1:80"}, "address must be host:port"},
		{"address too long", skycallv1.ClusterNodeSpec{Address: strings.Repeat("a", 300) + ":1"}, "Too long"},
		{"service port zero", skycallv1.ClusterNodeSpec{Service: svc("s", intstr.FromInt32(0), "")}, "port must be a number between 1 and 65535"},
		{"service port name too long", skycallv1.ClusterNodeSpec{Service: svc("s", intstr.FromString("a-very-long-port-name"), "")}, "port must be a number between 1 and 65535 or a port name"},
		{"service port name uppercase", skycallv1.ClusterNodeSpec{Service: svc("s", intstr.FromString("Cluster"), "")}, "port name"},
		{"service name invalid", skycallv1.ClusterNodeSpec{Service: svc("Store_1", intstr.FromInt32(1), "")}, "spec.service.name"},
		{"service name empty", skycallv1.ClusterNodeSpec{Service: svc("", intstr.FromInt32(1), "")}, "spec.service.name"},
		{"pod name invalid", skycallv1.ClusterNodeSpec{Service: svc("s", intstr.FromInt32(1), "Pod_0")}, "spec.service.pod"},
		{"node name with space", skycallv1.ClusterNodeSpec{NodeName: "game 1", Address: "db:1"}, "spec.nodeName"},
		{"node name too long", skycallv1.ClusterNodeSpec{NodeName: strings.Repeat("n", 64), Address: "db:1"}, "spec.nodeName"},
		// Names skynet's cluster config reads as something else.
		{"node name _ENV", skycallv1.ClusterNodeSpec{NodeName: "_ENV", Address: "db:1"}, "must not be a Lua keyword"},
		{"node name _G", skycallv1.ClusterNodeSpec{NodeName: "_G", Address: "db:1"}, "must not be a Lua keyword"},
		{"node name __nowaiting", skycallv1.ClusterNodeSpec{NodeName: "__nowaiting", Address: "db:1"}, "nor start with __"},
		{"node name __anything", skycallv1.ClusterNodeSpec{NodeName: "__x", Address: "db:1"}, "nor start with __"},
		{"address with a quote", skycallv1.ClusterNodeSpec{Address: `db":1`}, "address must be host:port"},
		{"address with a newline", skycallv1.ClusterNodeSpec{Address: "db:1\nx = false"}, "address must be host:port"},
	}
	// Every Lua keyword in spec.nodeName, with the message that says why.
	for _, kw := range clusterconfig.Keywords() {
		cases = append(cases, struct {
			name string
			spec skycallv1.ClusterNodeSpec
			want string
		}{"node name " + kw, skycallv1.ClusterNodeSpec{NodeName: kw, Address: "db:1"}, "must not be a Lua keyword"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"}, Spec: tc.spec}
			err := k8s.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("accepted %+v; want rejection mentioning %q", tc.spec, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("rejected with %q; want it to mention %q", err, tc.want)
			}
		})
	}

	for _, kw := range clusterconfig.Keywords() {
		obj := &skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: kw}, Spec: skycallv1.ClusterNodeSpec{Address: "db:1"}}
		if err := k8s.Create(context.Background(), obj); err == nil || !strings.Contains(err.Error(), "set spec.nodeName") {
			t.Errorf("ClusterNode named %q without spec.nodeName: got %v, want a rejection saying to set spec.nodeName", kw, err)
		}
		obj.Spec.NodeName = "node_" + kw
		if err := k8s.Create(context.Background(), obj); err != nil {
			t.Errorf("ClusterNode named %q with spec.nodeName %s rejected: %v", kw, obj.Spec.NodeName, err)
		}
	}

	good := []skycallv1.ClusterNodeSpec{
		{Address: "10.0.0.1:2526"},
		{Address: "db.default.svc.cluster.local:2526"},
		{Address: "[fd00::1]:2526"},
		{Address: "localhost:65535", NodeName: "game_1"},
		{Address: "db:1", NodeName: "_ENV2"},
		{Address: "db:1", NodeName: "G_"},
		{Address: "db:1", NodeName: "a__b"},
		{Service: svc("store", intstr.FromString("cluster"), "")},
		{Service: svc("store", intstr.FromInt32(2528), "store-0")},
		{Address: "db:1", Down: true},
	}
	for _, spec := range good {
		obj := &skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "good-"}, Spec: spec}
		if err := k8s.Create(context.Background(), obj); err != nil {
			t.Errorf("rejected good spec %+v: %v", spec, err)
		}
	}
}

// The CRD's rules on node names and addresses judge the shared corpus as
// clusterconfig's Go rules do (which the corpus test there holds to the
// corpus): a name as spec.nodeName, and as metadata.name without one where
// Kubernetes allows it as an object name; an address as spec.address.
func TestCRDRulesAgreeWithClusterConfig(t *testing.T) {
	ns := newNamespace(t)
	corpus := clusterconfigtest.Load(t)
	create := func(obj *skycallv1.ClusterNode, what string, ok bool) {
		t.Helper()
		err := k8s.Create(context.Background(), obj)
		switch {
		case ok && err != nil:
			t.Errorf("%s: clusterconfig accepts it, the CRD rejects it: %v", what, err)
		case !ok && err == nil:
			t.Errorf("%s: clusterconfig rejects it, the CRD accepts it", what)
		}
	}
	for _, n := range corpus.Names {
		if n.Value == "" {
			continue // an empty spec.nodeName is omitted: metadata.name stands in
		}
		create(&skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "name-"},
			Spec: skycallv1.ClusterNodeSpec{NodeName: n.Value, Address: "db:1"}},
			fmt.Sprintf("spec.nodeName %q", n.Value), n.OK)
		if len(validation.IsDNS1123Subdomain(n.Value)) == 0 {
			create(&skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n.Value},
				Spec: skycallv1.ClusterNodeSpec{Address: "db:1"}},
				fmt.Sprintf("metadata.name %q without spec.nodeName", n.Value), n.OK)
		}
	}
	for _, a := range corpus.Addresses {
		create(&skycallv1.ClusterNode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "addr-"},
			Spec: skycallv1.ClusterNodeSpec{Address: a.Value}},
			fmt.Sprintf("spec.address %q", a.Value), a.OK)
	}
}
