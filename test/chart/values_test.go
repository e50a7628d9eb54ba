package chart_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// serviceMonitor is the part of a monitoring.coreos.com/v1 ServiceMonitor
// the chart sets (the Prometheus Operator's types are not a dependency).
type serviceMonitor struct {
	Spec struct {
		Endpoints []struct {
			Port            string         `json:"port"`
			Scheme          string         `json:"scheme"`
			BearerTokenFile string         `json:"bearerTokenFile"`
			TLSConfig       map[string]any `json:"tlsConfig"`
		} `json:"endpoints"`
	} `json:"spec"`
}

func TestMetricsAreHTTPSWithAuthByDefaultAndPlainOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name       string
		flags      []string
		wantScheme string
		wantArg    bool // --metrics-secure=false
	}{
		{"default", nil, "https", false},
		{"metrics.secure=false", []string{"--set", "metrics.secure=false"}, "http", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, append([]string{"--set", "serviceMonitor.enabled=true"}, tc.flags...)...)
			args := managerDeployment(t, objs).Spec.Template.Spec.Containers[0].Args
			if got := slices.Contains(args, "--metrics-secure=false"); got != tc.wantArg {
				t.Errorf("args %q: --metrics-secure=false present = %v, want %v", args, got, tc.wantArg)
			}
			var sm serviceMonitor
			if err := yaml.Unmarshal(mustFind(t, objs, "ServiceMonitor", "skycall-manager").raw, &sm); err != nil {
				t.Fatal(err)
			}
			ep := sm.Spec.Endpoints[0]
			if ep.Scheme != tc.wantScheme {
				t.Errorf("ServiceMonitor scheme = %q, want %q", ep.Scheme, tc.wantScheme)
			}
			if tc.wantScheme == "https" {
				if ep.BearerTokenFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" || ep.TLSConfig["insecureSkipVerify"] != true {
					t.Errorf("ServiceMonitor endpoint = %+v, want Prometheus' token and insecureSkipVerify for the self-signed certificate", ep)
				}
			} else if ep.BearerTokenFile != "" || ep.TLSConfig != nil {
				t.Errorf("plain HTTP ServiceMonitor endpoint = %+v, want no token or TLS", ep)
			}
		})
	}

	// A CA of one's own replaces insecureSkipVerify.
	objs := render(t, "--set", "serviceMonitor.enabled=true,serviceMonitor.insecureSkipVerify=false,serviceMonitor.tlsConfig.serverName=skycall-manager-metrics.skycall-system.svc")
	var sm serviceMonitor
	if err := yaml.Unmarshal(mustFind(t, objs, "ServiceMonitor", "skycall-manager").raw, &sm); err != nil {
		t.Fatal(err)
	}
	if tls := sm.Spec.Endpoints[0].TLSConfig; tls["insecureSkipVerify"] != false || tls["serverName"] != "skycall-manager-metrics.skycall-system.svc" {
		t.Errorf("tlsConfig = %v, want insecureSkipVerify false and the given serverName", tls)
	}
}

func TestMetricsReaderAndAuthDelegationRBAC(t *testing.T) {
	objs := render(t)
	var reader rbacv1.ClusterRole
	mustFind(t, objs, "ClusterRole", "skycall-metrics-reader").decode(t, &reader)
	want := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
	if !reflect.DeepEqual(reader.Rules, want) {
		t.Errorf("metrics-reader rules = %+v, want %+v", reader.Rules, want)
	}
	// The manager asks the API server who a scraper is and what it may do.
	var mgr rbacv1.ClusterRole
	mustFind(t, objs, "ClusterRole", "skycall-manager").decode(t, &mgr)
	for _, need := range []struct{ group, resource string }{
		{"authentication.k8s.io", "tokenreviews"}, {"authorization.k8s.io", "subjectaccessreviews"},
	} {
		found := false
		for _, r := range mgr.Rules {
			if slices.Contains(r.APIGroups, need.group) && slices.Contains(r.Resources, need.resource) && slices.Contains(r.Verbs, "create") {
				found = true
			}
		}
		if !found {
			t.Errorf("manager ClusterRole cannot create %s.%s, which --metrics-secure needs", need.resource, need.group)
		}
	}
}

func TestAggregatedRolesLetViewAndEditUsersUseClusterNodes(t *testing.T) {
	objs := render(t)
	var view, edit rbacv1.ClusterRole
	mustFind(t, objs, "ClusterRole", "skycall-view").decode(t, &view)
	mustFind(t, objs, "ClusterRole", "skycall-edit").decode(t, &edit)
	if view.Labels["rbac.authorization.k8s.io/aggregate-to-view"] != "true" || edit.Labels["rbac.authorization.k8s.io/aggregate-to-edit"] != "true" {
		t.Errorf("labels view %v edit %v, want aggregate-to-view and aggregate-to-edit", view.Labels, edit.Labels)
	}
	if edit.Labels["rbac.authorization.k8s.io/aggregate-to-view"] != "" {
		t.Error("the edit role must not aggregate into view")
	}
	if !slices.Contains(view.Rules[0].Resources, "clusternodes") || slices.Contains(view.Rules[0].Verbs, "update") {
		t.Errorf("view rules = %+v, want read-only clusternodes", view.Rules)
	}
	if !slices.Contains(edit.Rules[0].Verbs, "update") || slices.Contains(edit.Rules[0].Resources, "clusternodes/status") {
		t.Errorf("edit rules = %+v, want writes on clusternodes but not their status (the manager's)", edit.Rules)
	}
	off := render(t, "--set", "aggregateRoles.enabled=false")
	for _, n := range []string{"skycall-view", "skycall-edit"} {
		if _, ok := find(off, "ClusterRole", n); ok {
			t.Errorf("aggregateRoles.enabled=false still renders %s", n)
		}
	}
}

func TestDeploymentValuesOnAndOff(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name  string
		flags []string
		check func(t *testing.T, pod corev1.PodSpec, c corev1.Container)
	}{
		{"image digest", []string{"--set", "image.digest=" + digest}, func(t *testing.T, _ corev1.PodSpec, c corev1.Container) {
			if c.Image != "ghcr.io/skycall-io/skycall-manager@"+digest {
				t.Errorf("image = %q, want by digest", c.Image)
			}
		}},
		{"extraEnv", []string{"--set", "extraEnv[0].name=GOMEMLIMIT,extraEnv[0].value=200MiB"}, func(t *testing.T, _ corev1.PodSpec, c corev1.Container) {
			if !reflect.DeepEqual(c.Env, []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "200MiB"}}) {
				t.Errorf("env = %+v", c.Env)
			}
		}},
		{"volumes and mounts", []string{"--set", "volumes[0].name=certs,volumes[0].secret.secretName=metrics-cert,volumeMounts[0].name=certs,volumeMounts[0].mountPath=/certs,volumeMounts[0].readOnly=true"},
			func(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
				if len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "metrics-cert" {
					t.Errorf("volumes = %+v", pod.Volumes)
				}
				if !reflect.DeepEqual(c.VolumeMounts, []corev1.VolumeMount{{Name: "certs", MountPath: "/certs", ReadOnly: true}}) {
					t.Errorf("volumeMounts = %+v", c.VolumeMounts)
				}
			}},
		{"probes", []string{"--set", "probes.liveness.periodSeconds=7,probes.readiness.failureThreshold=9"}, func(t *testing.T, _ corev1.PodSpec, c corev1.Container) {
			if c.LivenessProbe.PeriodSeconds != 7 || c.ReadinessProbe.FailureThreshold != 9 || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("probes = %+v / %+v", c.LivenessProbe, c.ReadinessProbe)
			}
		}},
		{"topologySpreadConstraints", []string{"--set", "topologySpreadConstraints[0].maxSkew=1,topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone,topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway"},
			func(t *testing.T, pod corev1.PodSpec, _ corev1.Container) {
				if len(pod.TopologySpreadConstraints) != 1 || pod.TopologySpreadConstraints[0].TopologyKey != "topology.kubernetes.io/zone" {
					t.Errorf("topologySpreadConstraints = %+v", pod.TopologySpreadConstraints)
				}
			}},
		{"runAsUser when a platform wants one", []string{"--set", "podSecurityContext.runAsUser=1000"}, func(t *testing.T, pod corev1.PodSpec, _ corev1.Container) {
			if pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser != 1000 || !*pod.SecurityContext.RunAsNonRoot {
				t.Errorf("pod securityContext = %+v", pod.SecurityContext)
			}
		}},
		{"metrics port", []string{"--set", "metrics.port=9443"}, func(t *testing.T, _ corev1.PodSpec, c corev1.Container) {
			if containerPort(c, "metrics") != 9443 || !slices.Contains(c.Args, "--metrics-bind-address=:9443") {
				t.Errorf("ports %+v args %q, want metrics on 9443", c.Ports, c.Args)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on := managerDeployment(t, render(t, tc.flags...)).Spec.Template.Spec
			tc.check(t, on, on.Containers[0])
		})
	}

	// Off (the defaults): none of the above is rendered.
	d := managerDeployment(t, render(t))
	pod, c := d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0]
	if c.Env != nil || pod.Volumes != nil || c.VolumeMounts != nil || pod.TopologySpreadConstraints != nil || strings.Contains(c.Image, "@") {
		t.Errorf("defaults render env %v, volumes %v, mounts %v, spread %v, image %q", c.Env, pod.Volumes, c.VolumeMounts, pod.TopologySpreadConstraints, c.Image)
	}
	if d.Spec.RevisionHistoryLimit == nil || *d.Spec.RevisionHistoryLimit != 10 {
		t.Errorf("revisionHistoryLimit = %v, want 10", d.Spec.RevisionHistoryLimit)
	}
	d = managerDeployment(t, render(t, "--set", "revisionHistoryLimit=2"))
	if *d.Spec.RevisionHistoryLimit != 2 {
		t.Errorf("revisionHistoryLimit = %v, want 2", *d.Spec.RevisionHistoryLimit)
	}
}

func TestPodDisruptionBudgetOnAndOff(t *testing.T) {
	if _, ok := find(render(t), "PodDisruptionBudget", "skycall-manager"); ok {
		t.Error("defaults render a PodDisruptionBudget")
	}
	for _, tc := range []struct {
		flags                 string
		minAvailable, maxUnav *intstr.IntOrString
	}{
		{"podDisruptionBudget.enabled=true", nil, ptrIntOrString(intstr.FromInt32(1))},
		{"podDisruptionBudget.enabled=true,replicas=3,podDisruptionBudget.minAvailable=2", ptrIntOrString(intstr.FromInt32(2)), nil},
		{"podDisruptionBudget.enabled=true,podDisruptionBudget.maxUnavailable=50%", nil, ptrIntOrString(intstr.FromString("50%"))},
	} {
		objs := render(t, "--set", tc.flags)
		var pdb policyv1.PodDisruptionBudget
		mustFind(t, objs, "PodDisruptionBudget", "skycall-manager").decode(t, &pdb)
		if !reflect.DeepEqual(pdb.Spec.MinAvailable, tc.minAvailable) || !reflect.DeepEqual(pdb.Spec.MaxUnavailable, tc.maxUnav) {
			t.Errorf("%s: minAvailable %v maxUnavailable %v, want %v and %v", tc.flags, pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable, tc.minAvailable, tc.maxUnav)
		}
		pods := managerDeployment(t, objs).Spec.Template.Labels
		for k, v := range pdb.Spec.Selector.MatchLabels {
			if pods[k] != v {
				t.Errorf("PodDisruptionBudget selects %s=%s, which the manager pods lack", k, v)
			}
		}
	}
}

func ptrIntOrString(v intstr.IntOrString) *intstr.IntOrString { return &v }

func TestNetworkPolicyOnAndOff(t *testing.T) {
	if _, ok := find(render(t), "NetworkPolicy", "skycall-manager"); ok {
		t.Error("defaults render a NetworkPolicy")
	}
	objs := render(t, "--set", "networkPolicy.enabled=true,networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring")
	var np networkingv1.NetworkPolicy
	mustFind(t, objs, "NetworkPolicy", "skycall-manager").decode(t, &np)
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != "metrics" {
		t.Fatalf("ingress = %+v, want only the metrics port", np.Spec.Ingress)
	}
	if from := np.Spec.Ingress[0].From; len(from) != 1 || from[0].NamespaceSelector.MatchLabels["team"] != "monitoring" {
		t.Errorf("from = %+v, want the monitoring namespaces", from)
	}
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes = %v, want Ingress only (the manager must reach the API server)", np.Spec.PolicyTypes)
	}
	pods := managerDeployment(t, objs).Spec.Template.Labels
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if pods[k] != v {
			t.Errorf("NetworkPolicy selects %s=%s, which the manager pods lack", k, v)
		}
	}
}

func TestHelmTestPodChecksCRDAndAuthorizedScrape(t *testing.T) {
	objs := render(t)
	var pod corev1.Pod
	mustFind(t, objs, "Pod", "skycall-test").decode(t, &pod)
	if pod.Annotations["helm.sh/hook"] != "test" {
		t.Errorf("test pod hook = %q, want test", pod.Annotations["helm.sh/hook"])
	}
	c := pod.Spec.Containers[0]
	d := managerDeployment(t, objs)
	if c.Image != d.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("test image %q, want the manager's %q (a local cluster has no other)", c.Image, d.Spec.Template.Spec.Containers[0].Image)
	}
	wantArgs := []string{"check", "--crd=clusternodes.cluster.skycall.io", "--metrics-service=skycall-system/skycall-manager-metrics", "--metrics-scheme=https"}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("test args = %q, want %q", c.Args, wantArgs)
	}
	var crb rbacv1.ClusterRoleBinding
	mustFind(t, objs, "ClusterRoleBinding", "skycall-test").decode(t, &crb)
	if crb.Subjects[0].Name != pod.Spec.ServiceAccountName {
		t.Errorf("test binding subject %+v, want the test pod's ServiceAccount %s", crb.Subjects, pod.Spec.ServiceAccountName)
	}
	var plain corev1.Pod
	mustFind(t, render(t, "--set", "metrics.secure=false"), "Pod", "skycall-test").decode(t, &plain)
	if !slices.Contains(plain.Spec.Containers[0].Args, "--metrics-scheme=http") {
		t.Errorf("with metrics.secure=false the test scrapes %q, want plain http", plain.Spec.Containers[0].Args)
	}
	if _, ok := find(render(t, "--set", "tests.enabled=false"), "Pod", "skycall-test"); ok {
		t.Error("tests.enabled=false still renders the test pod")
	}
}
