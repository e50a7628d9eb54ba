package chart_test

import (
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// prometheusRule is the part of a monitoring.coreos.com/v1 PrometheusRule the
// chart sets (the Prometheus Operator's types are not a dependency).
type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Metadata   struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// skycallMetric matches a skycall metric name in PromQL; the histogram
// suffixes are stripped before looking the name up.
var skycallMetric = regexp.MustCompile(`skycall_[a-z_]+`)

// definedMetrics are the skycall metric names the Go code registers, read
// from the files that define them, so that a renamed metric fails here
// instead of leaving an alert or panel that never has data.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, f := range []string{"controllers/metrics.go", "sender/metrics.go", "sender/server/metrics.go", "internal/relay/metrics.go", "cmd/skycall-agent/agent.go"} {
		src, err := os.ReadFile(repoRoot + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"(skycall_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d skycall metric names in the Go sources: %v", len(names), names)
	}
	return names
}

func checkMetricNames(t *testing.T, where, expr string, defined map[string]bool) {
	t.Helper()
	for _, name := range skycallMetric.FindAllString(expr, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && defined[b] {
				base = b
			}
		}
		if !defined[base] {
			t.Errorf("%s uses %s, which no skycall code registers: %s", where, name, expr)
		}
	}
}

// runbookAnchors are the GitHub anchors of docs/runbook.md's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(repoRoot + "/docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.Lines(string(src)) {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "## "); ok {
			anchors[strings.ReplaceAll(strings.ToLower(h), " ", "-")] = true
		}
	}
	return anchors
}

func TestMonitoringOffByDefault(t *testing.T) {
	objs := render(t)
	if n := len(ofKind(objs, "PrometheusRule")); n != 0 {
		t.Errorf("defaults render %d PrometheusRules, want none", n)
	}
	if _, ok := find(objs, "ConfigMap", "skycall-dashboard"); ok {
		t.Error("defaults render the Grafana dashboard ConfigMap, want none")
	}
}

func TestPrometheusRuleAlertsHaveRunbooksAndKnownMetrics(t *testing.T) {
	objs := render(t, "--set", "prometheusRule.enabled=true", "--set", "prometheusRule.additionalLabels.release=kube-prometheus-stack")
	var pr prometheusRule
	if err := yaml.Unmarshal(mustFind(t, objs, "PrometheusRule", "skycall-manager").raw, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Metadata.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule apiVersion %q labels %v, want monitoring.coreos.com/v1 with additionalLabels", pr.APIVersion, pr.Metadata.Labels)
	}
	defined, anchors := definedMetrics(t), runbookAnchors(t)
	alerts := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Expr == "" || r.For == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %q lacks expr, for, severity or summary: %+v", r.Alert, r)
			}
			checkMetricNames(t, "alert "+r.Alert, r.Expr, defined)
			u, err := url.Parse(r.Annotations["runbook_url"])
			if err != nil || u.Scheme != "https" || !strings.HasSuffix(u.Path, "/docs/runbook.md") {
				t.Errorf("alert %q runbook_url %q, want https://…/docs/runbook.md#section", r.Alert, r.Annotations["runbook_url"])
				continue
			}
			if u.Fragment != strings.ToLower(r.Alert) || !anchors[u.Fragment] {
				t.Errorf("alert %q runbook_url anchor %q has no \"## %s\" heading in docs/runbook.md", r.Alert, u.Fragment, r.Alert)
			}
		}
	}
	for _, want := range []string{"SkycallOperatorDown", "SkycallClusterNodesNotReady", "SkycallRegistryNearSizeLimit",
		"SkycallEndpointSliceToRegistrySlow", "SkycallSenderDroppingMessages", "SkycallSenderQueueStuck", "SkycallServerRejecting"} {
		if !alerts[want] {
			t.Errorf("no alert %s; have %v", want, alerts)
		}
	}
	// SkycallOperatorDown must watch the job the chart's ServiceMonitor
	// creates: the metrics Service's name.
	mustFind(t, objs, "Service", "skycall-manager-metrics")
	if !strings.Contains(pr.Spec.Groups[0].Rules[0].Expr, `job="skycall-manager-metrics"`) {
		t.Errorf("SkycallOperatorDown expr %q does not watch job skycall-manager-metrics", pr.Spec.Groups[0].Rules[0].Expr)
	}
}

// grafanaDashboard is the part of a Grafana dashboard model the test reads.
type grafanaDashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestGrafanaDashboardConfigMapForTheSidecar(t *testing.T) {
	for _, tc := range []struct {
		name       string
		flags      []string
		wantNS     string
		wantLabels map[string]string
	}{
		{"default sidecar label", nil, namespace, map[string]string{"grafana_dashboard": "1"}},
		{"own label and namespace", []string{"--set", "grafanaDashboard.namespace=monitoring", "--set", "grafanaDashboard.labels.dashboards=skycall"},
			"monitoring", map[string]string{"grafana_dashboard": "1", "dashboards": "skycall"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, append([]string{"--set", "grafanaDashboard.enabled=true"}, tc.flags...)...)
			var cm corev1.ConfigMap
			mustFind(t, objs, "ConfigMap", "skycall-dashboard").decode(t, &cm)
			if cm.Namespace != tc.wantNS {
				t.Errorf("dashboard ConfigMap in %q, want %q", cm.Namespace, tc.wantNS)
			}
			for k, v := range tc.wantLabels {
				if cm.Labels[k] != v {
					t.Errorf("dashboard ConfigMap label %s=%q, want %q", k, cm.Labels[k], v)
				}
			}
			var d grafanaDashboard
			if err := json.Unmarshal([]byte(cm.Data["skycall.json"]), &d); err != nil {
				t.Fatalf("skycall.json is not valid JSON: %v", err)
			}
			defined := definedMetrics(t)
			titles := map[string]bool{}
			for _, p := range d.Panels {
				titles[p.Title] = true
				if p.Type != "row" && len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, q := range p.Targets {
					checkMetricNames(t, "panel "+p.Title, q.Expr, defined)
				}
			}
			for _, want := range []string{"ClusterNodes not Ready by reason", "Registry size (limit about 1 MiB)", "EndpointSlice to registry delay",
				"Queued messages", "Dropped sends by reason", "Calls by result", "Rejected by reason"} {
				if !titles[want] {
					t.Errorf("dashboard has no panel %q", want)
				}
			}
		})
	}
}
