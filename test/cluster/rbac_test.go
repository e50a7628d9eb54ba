package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestViewAndEditUsersGetClusterNodesThroughAggregation binds one user to
// the built-in view ClusterRole and another to edit, in a namespace, and
// shows that what they may do with ClusterNodes comes from the chart's
// aggregated ClusterRoles, filled into view and edit by the real
// kube-controller-manager's clusterrole-aggregation controller: nothing
// before the chart's roles exist; then view gets and lists but cannot
// create or delete, and edit creates and deletes.
func TestViewAndEditUsersGetClusterNodesThroughAggregation(t *testing.T) {
	c := sharedCluster(t)
	j := &journey{c: c}
	const (
		ns      = "skycall-rbac"
		rel     = "skycall-rbac" // a release name of its own: its ClusterRoles are skycall-rbac-view and -edit
		viewer  = "skycall-rbac-viewer"
		editor  = "skycall-rbac-editor"
		crdName = "clusternodes.cluster.skycall.io"
	)
	ctx := context.Background()
	as := func(user string, stdin string, args ...string) (string, error) {
		args = append([]string{"--as", user, "-n", ns}, args...)
		if stdin != "" {
			return c.KubectlStdin(ctx, stdin, args...)
		}
		return c.Kubectl(ctx, args...)
	}
	const node = `apiVersion: cluster.skycall.io/v1
kind: ClusterNode
metadata:
  name: db
spec:
  address: 10.0.0.7:2528
`
	// Another test (the journey) may have installed the CRD and keeps it
	// (helm's resource-policy keep): then it is left as found.
	cget := func(obj, jsonpath string) string { // a cluster-scoped object's field, "" when absent
		return strings.TrimSpace(j.kubectl(t, "get", obj, "--ignore-not-found", "-o", "jsonpath="+jsonpath))
	}
	// The chart's own aggregated roles, from a release an earlier test
	// left, would grant what this test checks is missing at first.
	j.uninstallChart(t)
	crdExisted := cget("crd/"+crdName, "{.metadata.name}") != ""
	if !crdExisted {
		j.apply(t, j.helm(t, "template", rel, "charts/skycall", "--show-only", "templates/crd/cluster.skycall.io_clusternodes.yaml"))
		// Waited for: a later test's helm install must not meet it terminating.
		t.Cleanup(func() { _, _ = c.Kubectl(ctx, "delete", "crd", crdName, "--ignore-not-found", "--timeout=2m") })
		eventually(t, time.Minute, "the ClusterNode CRD established", func() (bool, string) {
			s := cget("crd/"+crdName, `{.status.conditions[?(@.type=="Established")].status}`)
			return s == "True", "Established=" + s
		})
	}
	j.kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { _, _ = c.Kubectl(ctx, "delete", "namespace", ns, "--ignore-not-found", "--wait=false") })
	j.kubectl(t, "create", "-n", ns, "rolebinding", "viewer", "--clusterrole=view", "--user="+viewer)
	j.kubectl(t, "create", "-n", ns, "rolebinding", "editor", "--clusterrole=edit", "--user="+editor)

	// Before the chart's roles: view and edit know nothing of ClusterNodes.
	if out, err := as(viewer, "", "get", "clusternodes"); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("a view user listed ClusterNodes before the aggregated roles existed: %q, %v", out, err)
	}
	if _, err := as(editor, node, "create", "-f", "-"); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("an edit user created a ClusterNode before the aggregated roles existed: %v", err)
	}

	roles := j.helm(t, "template", rel, "charts/skycall", "--show-only", "templates/rbac/aggregate_roles.yaml")
	j.apply(t, roles)
	t.Cleanup(func() {
		_, _ = c.Kubectl(ctx, "delete", "clusterrole", rel+"-view", rel+"-edit", "--ignore-not-found")
	})

	// The aggregation controller fills view's and edit's rules.
	eventually(t, time.Minute, "the view ClusterRole aggregates clusternodes", func() (bool, string) {
		rules := cget("clusterrole/view", `{.rules[?(@.apiGroups[0]=="cluster.skycall.io")]}`)
		return strings.Contains(rules, "clusternodes"), rules
	})
	eventually(t, time.Minute, "the edit user creates a ClusterNode", func() (bool, string) {
		out, err := as(editor, node, "create", "-f", "-")
		if err != nil {
			return false, err.Error()
		}
		return true, out
	})
	if out, err := as(viewer, "", "get", "clusternodes", "-o", "name"); err != nil || strings.TrimSpace(out) != "clusternode.cluster.skycall.io/db" {
		t.Errorf("the view user lists ClusterNodes: %q, %v; want clusternode.cluster.skycall.io/db", out, err)
	}
	if out, err := as(viewer, "", "get", "clusternode", "db", "-o", "jsonpath={.spec.address}"); err != nil || out != "10.0.0.7:2528" {
		t.Errorf("the view user gets ClusterNode db: %q, %v", out, err)
	}
	for what, args := range map[string][]string{
		"create": {"create", "-f", "-"},
		"delete": {"delete", "clusternode", "db"},
		"patch":  {"patch", "clusternode", "db", "--type=merge", "-p", `{"spec":{"address":"10.0.0.8:2528"}}`},
	} {
		stdin := ""
		if what == "create" {
			stdin = strings.Replace(node, "name: db", "name: other", 1)
		}
		if _, err := as(viewer, stdin, args...); err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("the view user may %s a ClusterNode: %v, want forbidden", what, err)
		}
	}
	if _, err := as(editor, "", "patch", "clusternode", "db", "--type=merge", "-p", `{"spec":{"address":"10.0.0.8:2528"}}`); err != nil {
		t.Errorf("the edit user cannot patch a ClusterNode: %v", err)
	}
	if _, err := as(editor, "", "delete", "clusternode", "db"); err != nil {
		t.Errorf("the edit user cannot delete a ClusterNode: %v", err)
	}
}
