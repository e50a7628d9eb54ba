// Package chart_test checks what users install: the Helm chart in
// charts/skycall, rendered by the real helm, and the kustomize tree in
// config/, rendered by the real kubectl. Both come from
// hack/control-plane.sh (or $SKYCALL_TOOLS); the tests fail, never skip,
// when they are missing.
package chart_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const (
	repoRoot  = "../.."
	chartDir  = repoRoot + "/charts/skycall"
	roleYAML  = repoRoot + "/config/rbac/role.yaml"
	release   = "skycall"
	namespace = "skycall-system"
	crdName   = "clusternodes.cluster.skycall.io"
	keepKey   = "helm.sh/resource-policy"
)

var (
	toolsOnce sync.Once
	toolsDir  string
	toolsErr  error
)

// tools returns the directory holding helm and kubectl: $SKYCALL_TOOLS, or
// the last line hack/control-plane.sh prints (it builds them once).
func tools(t *testing.T) string {
	t.Helper()
	toolsOnce.Do(func() {
		if dir := os.Getenv("SKYCALL_TOOLS"); dir != "" {
			toolsDir = dir
		} else {
			var stderr bytes.Buffer
			cmd := exec.Command(filepath.Join(repoRoot, "hack", "control-plane.sh"))
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				toolsErr = fmt.Errorf("hack/control-plane.sh failed (%v); set SKYCALL_TOOLS to a directory with helm and kubectl:\n%s", err, stderr.String())
				return
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			toolsDir = strings.TrimSpace(lines[len(lines)-1])
		}
		for _, bin := range []string{"helm", "kubectl"} {
			if _, err := os.Stat(filepath.Join(toolsDir, bin)); err != nil {
				toolsErr = fmt.Errorf("no %s in %q (from SKYCALL_TOOLS or hack/control-plane.sh): %v", bin, toolsDir, err)
				return
			}
		}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return toolsDir
}

// kubeVersion is the Kubernetes version the project builds against (k8s.io/api
// v0.X.Y in go.mod is Kubernetes 1.X.Y). helm built from source defaults to
// v1.20, which the chart's kubeVersion (>=1.30) rejects.
func kubeVersion(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "k8s.io/api" && strings.HasPrefix(fields[1], "v0.") {
			return "1." + strings.TrimPrefix(fields[1], "v0.")
		}
	}
	t.Fatal("go.mod does not require k8s.io/api v0.X.Y")
	return ""
}

// run runs a tool from tools() and returns its stdout, or an error carrying
// its stderr.
func run(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(tools(t), tool), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// helmTemplate renders the chart as release "skycall" in skycall-system with
// extra flags such as "--set", "replicas=2".
func helmTemplate(t *testing.T, flags ...string) (string, error) {
	t.Helper()
	args := append([]string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion(t)}, flags...)
	return run(t, "helm", args...)
}

// object is one rendered manifest, kept as YAML for typed decoding.
type object struct {
	Kind, Name, Namespace string
	raw                   []byte
}

func (o object) decode(t *testing.T, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(o.raw, into); err != nil {
		t.Fatalf("decode %s %s: %v", o.Kind, o.Name, err)
	}
}

// parse splits a multi-document YAML stream and checks that every document
// is an object with apiVersion, kind and metadata.name.
func parse(t *testing.T, stream string) []object {
	t.Helper()
	var objs []object
	for i, doc := range splitDocuments(stream) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("document %d is not YAML: %v\n%s", i, err, doc)
		}
		if m == nil {
			continue // only comments
		}
		meta, _ := m["metadata"].(map[string]any)
		o := object{raw: []byte(doc)}
		o.Kind, _ = m["kind"].(string)
		o.Name, _ = meta["name"].(string)
		o.Namespace, _ = meta["namespace"].(string)
		if _, ok := m["apiVersion"].(string); !ok || o.Kind == "" || o.Name == "" {
			t.Fatalf("document %d lacks apiVersion, kind or metadata.name:\n%s", i, doc)
		}
		objs = append(objs, o)
	}
	return objs
}

func splitDocuments(stream string) []string {
	var docs []string
	var cur strings.Builder
	for line := range strings.Lines(stream) {
		if strings.TrimRight(line, "\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}

func render(t *testing.T, flags ...string) []object {
	t.Helper()
	out, err := helmTemplate(t, flags...)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, out)
}

func find(objs []object, kind, name string) (object, bool) {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

func mustFind(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	o, ok := find(objs, kind, name)
	if !ok {
		var have []string
		for _, o := range objs {
			have = append(have, o.Kind+"/"+o.Name)
		}
		t.Fatalf("no %s %s rendered; have %v", kind, name, have)
	}
	return o
}

func ofKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func managerDeployment(t *testing.T, objs []object) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	mustFind(t, objs, "Deployment", "skycall-manager").decode(t, &d)
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("manager pod has %d containers, want 1", n)
	}
	return &d
}

func TestChartLints(t *testing.T) {
	for name, flags := range map[string][]string{
		"defaults": nil,
		"everything on": {
			"--set", "replicas=2", "--set", "watchNamespaces={a,b}", "--set", "sender.namespaces={a,b}",
			"--set", "serviceMonitor.enabled=true", "--set", "crds.keep=false",
		},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir, "--kube-version", kubeVersion(t)}, flags...)
			if out, err := run(t, "helm", args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func TestDeploymentRunsLockedDown(t *testing.T) {
	d := managerDeployment(t, render(t))
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]

	if want := "ghcr.io/skycall-io/skycall-manager:0.1.0"; c.Image != want {
		t.Errorf("image = %q, want %q (tag defaults to appVersion)", c.Image, want)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("imagePullPolicy = %q, want IfNotPresent", c.ImagePullPolicy)
	}
	if pod.ServiceAccountName != "skycall-manager" {
		t.Errorf("serviceAccountName = %q, want skycall-manager", pod.ServiceAccountName)
	}

	psc := pod.SecurityContext
	// runAsUser stays unset so that OpenShift-style platforms can assign a
	// UID; the image's USER (65532) applies otherwise.
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser != nil ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot, no runAsUser, seccomp RuntimeDefault", psc)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("manager container has no securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("container securityContext.runAsNonRoot is not true")
	case sc.RunAsUser != nil:
		t.Errorf("container securityContext.runAsUser = %v, want unset", *sc.RunAsUser)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container securityContext.readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container securityContext.allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("container capabilities = %+v, want drop [ALL] and no add", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("container seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
	}

	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || containerPort(c, p.probe.HTTPGet.Port.String()) != 8081 {
			t.Errorf("%s probe = GET %s on port %s, want GET %s on 8081", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}
	if containerPort(c, "metrics") != 8443 {
		t.Errorf("container ports = %+v, want metrics on 8443", c.Ports)
	}

	for _, res := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		if res.Cpu().IsZero() || res.Memory().IsZero() {
			t.Errorf("resources = %+v, want cpu and memory requests and limits", c.Resources)
			break
		}
	}

	for _, want := range []string{"--metrics-bind-address=:8443", "--health-probe-bind-address=:8081", "--zap-log-level=info"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %s", c.Args, want)
		}
	}
	if hasPrefix(c.Args, "--metrics-secure") {
		t.Errorf("args %q change --metrics-secure, want the manager's default (HTTPS with authn/authz)", c.Args)
	}
	if hasPrefix(c.Args, "--namespaces") {
		t.Errorf("args %q restrict namespaces, want all by default", c.Args)
	}
}

// containerPort resolves a probe or Service port (number or name) to a
// container port number.
func containerPort(c corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	return 0
}

func hasPrefix(args []string, prefix string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, prefix) })
}

func TestLeaderElectionWithMoreThanOneReplica(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  bool
	}{
		{"one replica", nil, false},
		{"two replicas", []string{"--set", "replicas=2"}, true},
		{"forced with one replica", []string{"--set", "leaderElection.enabled=true"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := managerDeployment(t, render(t, tc.flags...))
			args := d.Spec.Template.Spec.Containers[0].Args
			if got := slices.Contains(args, "--leader-elect"); got != tc.want {
				t.Errorf("--leader-elect in args = %v, want %v (args %q)", got, tc.want, args)
			}
			// Without leader election, a rolling update would run two
			// reconciling managers side by side.
			if !tc.want && d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("strategy = %q without leader election, want Recreate", d.Spec.Strategy.Type)
			}
		})
	}
}

func TestLeaderElectionNamespace(t *testing.T) {
	d := managerDeployment(t, render(t, "--set", "replicas=3", "--set", "leaderElection.namespace=locks"))
	args := d.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--leader-election-namespace=locks") {
		t.Errorf("args %q lack --leader-election-namespace=locks", args)
	}
	if *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %d, want 3", *d.Spec.Replicas)
	}
}

func TestLeaderElectionTimingFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"client-go's defaults", []string{"--set", "replicas=2"},
			[]string{"--leader-elect-lease-duration=15s", "--leader-elect-renew-deadline=10s", "--leader-elect-retry-period=2s"}},
		{"faster failover", []string{"--set", "replicas=2", "--set", "leaderElection.leaseDuration=8s",
			"--set", "leaderElection.renewDeadline=5s", "--set", "leaderElection.retryPeriod=1s"},
			[]string{"--leader-elect-lease-duration=8s", "--leader-elect-renew-deadline=5s", "--leader-elect-retry-period=1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := managerDeployment(t, render(t, tc.flags...)).Spec.Template.Spec.Containers[0].Args
			for _, w := range tc.want {
				if !slices.Contains(args, w) {
					t.Errorf("args %q lack %s", args, w)
				}
			}
		})
	}
	// Without leader election the timing flags are noise.
	if args := managerDeployment(t, render(t)).Spec.Template.Spec.Containers[0].Args; hasPrefix(args, "--leader-elect-") {
		t.Errorf("one replica without leader election: args %q carry lease timing", args)
	}
}

func TestCRDKeptOnUninstallByDefault(t *testing.T) {
	for _, tc := range []struct {
		name               string
		flags              []string
		rendered, keepAnno bool
	}{
		{"defaults", nil, true, true},
		{"keep off", []string{"--set", "crds.keep=false"}, true, false},
		{"disabled", []string{"--set", "crds.enabled=false"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, ok := find(render(t, tc.flags...), "CustomResourceDefinition", crdName)
			if ok != tc.rendered {
				t.Fatalf("CRD rendered = %v, want %v", ok, tc.rendered)
			}
			if !ok {
				return
			}
			var crd struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
				Spec struct {
					Names struct {
						ShortNames []string `json:"shortNames"`
					} `json:"names"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(o.raw, &crd); err != nil {
				t.Fatal(err)
			}
			got, has := crd.Metadata.Annotations[keepKey]
			if has != tc.keepAnno || (has && got != "keep") {
				t.Errorf("annotation %s = %q (present %v), want present %v with keep", keepKey, got, has, tc.keepAnno)
			}
			if !slices.Contains(crd.Spec.Names.ShortNames, "cn") {
				t.Errorf("CRD short names %q lack cn", crd.Spec.Names.ShortNames)
			}
		})
	}
}

func TestWatchNamespacesBecomeFlag(t *testing.T) {
	d := managerDeployment(t, render(t, "--set", "watchNamespaces={a,b}"))
	args := d.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--namespaces=a,b") {
		t.Errorf("args %q lack --namespaces=a,b", args)
	}
}

func TestSenderRoleBoundPerNamespace(t *testing.T) {
	// --skip-tests: the helm test hooks have a RoleBinding of their own.
	objs := render(t, "--skip-tests", "--set", "sender.namespaces={games,lobby}", "--set", "sender.serviceAccount=gamesrv")

	var role rbacv1.ClusterRole
	mustFind(t, objs, "ClusterRole", "skycall-sender").decode(t, &role)
	want := []rbacv1.PolicyRule{{APIGroups: []string{"cluster.skycall.io"}, Resources: []string{"clusternodes"}, Verbs: []string{"get", "list", "watch"}}}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("skycall-sender rules = %+v, want %+v", role.Rules, want)
	}

	bindings := ofKind(objs, "RoleBinding")
	var got []string
	for _, o := range bindings {
		var rb rbacv1.RoleBinding
		o.decode(t, &rb)
		got = append(got, rb.Namespace)
		if rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "skycall-sender"}) {
			t.Errorf("RoleBinding in %s refers to %+v, want ClusterRole skycall-sender", rb.Namespace, rb.RoleRef)
		}
		wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "gamesrv", Namespace: rb.Namespace}}
		if !reflect.DeepEqual(rb.Subjects, wantSubjects) {
			t.Errorf("RoleBinding in %s binds %+v, want %+v", rb.Namespace, rb.Subjects, wantSubjects)
		}
	}
	if !reflect.DeepEqual(got, []string{"games", "lobby"}) {
		t.Errorf("sender RoleBindings in namespaces %q, want [games lobby]", got)
	}

	if n := len(ofKind(render(t, "--skip-tests"), "RoleBinding")); n != 0 {
		t.Errorf("defaults render %d RoleBindings, want none", n)
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string // each must appear in helm's error
	}{
		{"zero replicas", []string{"--set", "replicas=0"}, []string{"/replicas", "minimum"}},
		{"replicas not a number", []string{"--set-string", "replicas=two"}, []string{"/replicas", "want integer"}},
		{"unknown pull policy", []string{"--set", "image.pullPolicy=Sometimes"}, []string{"/image/pullPolicy", "IfNotPresent"}},
		{"unknown top-level key", []string{"--set", "replica=2"}, []string{"additional properties 'replica' not allowed"}},
		{"unknown log level", []string{"--set", "logLevel=verbose"}, []string{"/logLevel", "debug"}},
		{"duplicate sender namespace", []string{"--set", "sender.namespaces={a,a}"}, []string{"/sender/namespaces"}},
		{"lease duration without a unit", []string{"--set-string", "leaderElection.leaseDuration=15"}, []string{"/leaderElection/leaseDuration"}},
		{"zero retry period", []string{"--set", "leaderElection.retryPeriod=0s"}, []string{"/leaderElection/retryPeriod"}},
		{"digest that is no sha256", []string{"--set", "image.digest=latest"}, []string{"/image/digest"}},
		{"metrics port out of range", []string{"--set", "metrics.port=70000"}, []string{"/metrics/port"}},
		{"metrics.secure not a boolean", []string{"--set-string", "metrics.secure=no"}, []string{"/metrics/secure"}},
		{"root container", []string{"--set", "securityContext.runAsNonRoot=false"}, []string{"/securityContext/runAsNonRoot"}},
		{"root pod", []string{"--set", "podSecurityContext.runAsNonRoot=false"}, []string{"/podSecurityContext/runAsNonRoot"}},
		{"privilege escalation", []string{"--set", "securityContext.allowPrivilegeEscalation=true"}, []string{"/securityContext/allowPrivilegeEscalation"}},
		{"unknown probe field", []string{"--set", "probes.liveness.path=/x"}, []string{"/probes/liveness", "'path' not allowed"}},
		{"zero probe period", []string{"--set", "probes.readiness.periodSeconds=0"}, []string{"/probes/readiness/periodSeconds"}},
		{"negative revisionHistoryLimit", []string{"--set", "revisionHistoryLimit=-1"}, []string{"/revisionHistoryLimit"}},
		{"env without a name", []string{"--set", "extraEnv[0].value=x"}, []string{"/extraEnv/0", "name"}},
		{"volume mount without a path", []string{"--set", "volumeMounts[0].name=x"}, []string{"/volumeMounts/0", "mountPath"}},
		{"spread constraint without topologyKey", []string{"--set", "topologySpreadConstraints[0].maxSkew=1"}, []string{"/topologySpreadConstraints/0"}},
		{"PDB minAvailable not a count", []string{"--set-string", "podDisruptionBudget.minAvailable=one"}, []string{"/podDisruptionBudget/minAvailable"}},
		{"unknown networkPolicy key", []string{"--set", "networkPolicy.egress=true"}, []string{"/networkPolicy", "'egress' not allowed"}},
		{"aggregateRoles not a boolean", []string{"--set-string", "aggregateRoles.enabled=yes"}, []string{"/aggregateRoles/enabled"}},
		{"tests not a boolean", []string{"--set-string", "tests.enabled=yes"}, []string{"/tests/enabled"}},
		{"prometheusRule.enabled not a boolean", []string{"--set-string", "prometheusRule.enabled=yes"}, []string{"/prometheusRule/enabled"}},
		{"runbook URL with an anchor", []string{"--set", "prometheusRule.runbookBaseURL=https://x/runbook.md#top"}, []string{"/prometheusRule/runbookBaseURL"}},
		{"grafanaDashboard.enabled not a boolean", []string{"--set-string", "grafanaDashboard.enabled=yes"}, []string{"/grafanaDashboard/enabled"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmTemplate(t, tc.flags...)
			if err == nil {
				t.Fatalf("helm template %q succeeded, want a schema error", tc.flags)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// The chart's manager ClusterRole is generated from config/rbac/role.yaml by
// hack/chart-rbac.sh; this catches a stale or hand-edited copy.
func TestManagerClusterRoleMatchesGeneratedRBAC(t *testing.T) {
	raw, err := os.ReadFile(roleYAML)
	if err != nil {
		t.Fatal(err)
	}
	generated := parse(t, string(raw))
	if len(generated) != 1 || generated[0].Kind != "ClusterRole" || generated[0].Name != "skycall-manager" {
		t.Fatalf("config/rbac/role.yaml holds %+v, want one ClusterRole skycall-manager", generated)
	}
	var want rbacv1.ClusterRole
	generated[0].decode(t, &want)

	objs := render(t)
	var got rbacv1.ClusterRole
	mustFind(t, objs, "ClusterRole", "skycall-manager").decode(t, &got)
	if !reflect.DeepEqual(got.Rules, want.Rules) {
		t.Errorf("the chart's skycall-manager rules differ from config/rbac/role.yaml; run hack/generate.sh (hack/chart-rbac.sh)\n got: %+v\nwant: %+v", got.Rules, want.Rules)
	}

	var crb rbacv1.ClusterRoleBinding
	mustFind(t, objs, "ClusterRoleBinding", "skycall-manager").decode(t, &crb)
	sa := managerDeployment(t, objs).Spec.Template.Spec.ServiceAccountName
	wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: namespace}}
	if crb.RoleRef.Name != "skycall-manager" || !reflect.DeepEqual(crb.Subjects, wantSubjects) {
		t.Errorf("ClusterRoleBinding binds %+v to %+v, want %+v to skycall-manager", crb.Subjects, crb.RoleRef, wantSubjects)
	}
	mustFind(t, objs, "ServiceAccount", sa)
}

func TestMetricsServiceAndServiceMonitor(t *testing.T) {
	objs := render(t)
	var svc corev1.Service
	mustFind(t, objs, "Service", "skycall-manager-metrics").decode(t, &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 8443 {
		t.Errorf("metrics Service ports = %+v, want one port 8443 named metrics", svc.Spec.Ports)
	}
	d := managerDeployment(t, objs)
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("metrics Service selects %s=%s, which the manager pods lack", k, v)
		}
	}
	if containerPort(d.Spec.Template.Spec.Containers[0], svc.Spec.Ports[0].TargetPort.String()) != 8443 {
		t.Errorf("metrics Service targets %s, not the manager's port 8443", svc.Spec.Ports[0].TargetPort.String())
	}
	if n := len(ofKind(objs, "ServiceMonitor")); n != 0 {
		t.Errorf("defaults render %d ServiceMonitors, want none", n)
	}

	var sm struct {
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	withMonitor := render(t, "--set", "serviceMonitor.enabled=true")
	if err := yaml.Unmarshal(mustFind(t, withMonitor, "ServiceMonitor", "skycall-manager").raw, &sm); err != nil {
		t.Fatal(err)
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
		t.Errorf("ServiceMonitor = %+v, want monitoring.coreos.com/v1 scraping port metrics", sm)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, which the metrics Service lacks", k, v)
		}
	}
}

func TestKustomizeRenders(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		check func(t *testing.T, objs []object)
	}{
		{"config/default", checkDefault},
		{"config/samples", checkSamples},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			out, err := run(t, "kubectl", "kustomize", filepath.Join(repoRoot, tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, parse(t, out))
		})
	}
}

func checkDefault(t *testing.T, objs []object) {
	mustFind(t, objs, "Namespace", namespace)
	mustFind(t, objs, "CustomResourceDefinition", crdName)
	mustFind(t, objs, "ClusterRole", "skycall-sender")
	for _, o := range objs {
		if o.Kind != "Namespace" && o.Kind != "CustomResourceDefinition" && !strings.HasPrefix(o.Kind, "Cluster") && o.Namespace != namespace {
			t.Errorf("%s %s is in namespace %q, want %s", o.Kind, o.Name, o.Namespace, namespace)
		}
	}

	var role rbacv1.ClusterRole
	mustFind(t, objs, "ClusterRole", "skycall-manager").decode(t, &role)
	var crb rbacv1.ClusterRoleBinding
	mustFind(t, objs, "ClusterRoleBinding", "skycall-manager").decode(t, &crb)
	d := managerDeployment(t, objs)
	sa := d.Spec.Template.Spec.ServiceAccountName
	mustFind(t, objs, "ServiceAccount", sa)
	wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: namespace}}
	if crb.RoleRef.Name != role.Name || !reflect.DeepEqual(crb.Subjects, wantSubjects) {
		t.Errorf("ClusterRoleBinding binds %+v to %s, want %+v to %s", crb.Subjects, crb.RoleRef.Name, wantSubjects, role.Name)
	}
	mustFind(t, objs, "Service", "skycall-manager-metrics")

	// The kustomize manager runs exactly as locked down as the chart's.
	chart := managerDeployment(t, render(t))
	cp, kp := chart.Spec.Template.Spec, d.Spec.Template.Spec
	cc, kc := cp.Containers[0], kp.Containers[0]
	for _, f := range []struct {
		name        string
		chart, kust any
	}{
		{"pod securityContext", cp.SecurityContext, kp.SecurityContext},
		{"container securityContext", cc.SecurityContext, kc.SecurityContext},
		{"livenessProbe", cc.LivenessProbe, kc.LivenessProbe},
		{"readinessProbe", cc.ReadinessProbe, kc.ReadinessProbe},
		{"ports", cc.Ports, kc.Ports},
		{"resources", cc.Resources, kc.Resources},
		{"args", cc.Args, kc.Args},
		{"image", cc.Image, kc.Image},
	} {
		if !reflect.DeepEqual(f.chart, f.kust) {
			t.Errorf("config/manager %s differs from the chart's:\nkustomize: %+v\n    chart: %+v", f.name, f.kust, f.chart)
		}
	}
}

func checkSamples(t *testing.T, objs []object) {
	type sample struct {
		Spec struct {
			Address string `json:"address"`
			Service *struct {
				Name string `json:"name"`
				Port any    `json:"port"`
			} `json:"service"`
			Down bool `json:"down"`
		} `json:"spec"`
	}
	var address, service, down int
	services := map[string]corev1.Service{}
	for _, o := range ofKind(objs, "Service") {
		var s corev1.Service
		o.decode(t, &s)
		services[s.Name] = s
	}
	for _, o := range ofKind(objs, "ClusterNode") {
		var s sample
		if err := yaml.Unmarshal(o.raw, &s); err != nil {
			t.Fatal(err)
		}
		if (s.Spec.Address == "") == (s.Spec.Service == nil) {
			t.Errorf("sample %s sets %s, want exactly one of address or service", o.Name, o.raw)
		}
		switch {
		case s.Spec.Down:
			down++
		case s.Spec.Address != "":
			address++
		default:
			service++
			port, isName := s.Spec.Service.Port.(string)
			if !isName {
				t.Errorf("sample %s refers to port %v, want a port name", o.Name, s.Spec.Service.Port)
			}
			svc, ok := services[s.Spec.Service.Name]
			if !ok || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == port }) {
				t.Errorf("sample %s refers to Service %s port %s, which the samples do not define", o.Name, s.Spec.Service.Name, port)
			}
		}
	}
	if address == 0 || service == 0 || down == 0 {
		t.Errorf("samples have %d address, %d service and %d down ClusterNodes, want at least one of each", address, service, down)
	}
}
