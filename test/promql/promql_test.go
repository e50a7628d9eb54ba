package promql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const repoRoot = "../.."

// rule is the part of a PrometheusRule's rule the checks read.
type rule struct {
	Alert string            `json:"alert"`
	Expr  string            `json:"expr"`
	For   string            `json:"for"`
	Label map[string]string `json:"labels"`
}

type manifest struct {
	Kind string `json:"kind"`
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
	Data map[string]string `json:"data"`
}

// helm returns the helm binary: $SKYCALL_TOOLS/helm, else the directory
// hack/control-plane.sh prints last (it builds helm once).
func helm(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SKYCALL_TOOLS")
	if dir == "" {
		var stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(repoRoot, "hack", "control-plane.sh"))
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hack/control-plane.sh failed (%v); set SKYCALL_TOOLS to a directory with helm:\n%s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		dir = strings.TrimSpace(lines[len(lines)-1])
	}
	return filepath.Join(dir, "helm")
}

// render renders the chart with the alerts and the dashboard on.
func render(t *testing.T) []manifest {
	t.Helper()
	cmd := exec.Command(helm(t), "template", "skycall", filepath.Join(repoRoot, "charts", "skycall"),
		"--namespace", "skycall-system", "--kube-version", "1.37.2",
		"--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	var ms []manifest
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
		var m manifest
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("rendered chart: %v\n%s", err, doc)
		}
		if m.Kind != "" {
			ms = append(ms, m)
		}
	}
	return ms
}

// parse parses expr as Prometheus 3 does, with a clear error naming where
// the expression came from.
func parse(where, expr string) error {
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(expr); err != nil {
		return fmt.Errorf("%s: %q does not parse: %w", where, expr, err)
	}
	return nil
}

// grafanaVars stands in for the variables Grafana substitutes before it
// sends a panel's query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

func TestEveryAlertExpressionParses(t *testing.T) {
	var n int
	for _, m := range render(t) {
		if m.Kind != "PrometheusRule" {
			continue
		}
		for _, g := range m.Spec.Groups {
			for _, r := range g.Rules {
				n++
				where := fmt.Sprintf("alert %s (group %s)", r.Alert, g.Name)
				if err := parse(where, r.Expr); err != nil {
					t.Error(err)
				}
				if r.For != "" {
					if _, err := model.ParseDuration(r.For); err != nil {
						t.Errorf("%s: for: %q: %v", where, r.For, err)
					}
				}
				if !model.UTF8Validation.IsValidMetricName(r.Alert) {
					t.Errorf("%s: the alert name is not a valid metric name (Prometheus refuses the rule)", where)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("the chart rendered with prometheusRule.enabled=true has no alert rules")
	}
	t.Logf("%d alert expressions parse", n)
}

// exprs collects every "expr" string in a Grafana dashboard, wherever the
// panel nests it.
func exprs(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "expr" {
				*out = append(*out, s)
				continue
			}
			exprs(x, out)
		}
	case []any:
		for _, x := range v {
			exprs(x, out)
		}
	}
}

func TestEveryDashboardQueryParses(t *testing.T) {
	var all []string
	for _, m := range render(t) {
		if m.Kind != "ConfigMap" {
			continue
		}
		for key, body := range m.Data {
			if !strings.HasSuffix(key, ".json") {
				continue
			}
			var dash any
			if err := json.Unmarshal([]byte(body), &dash); err != nil {
				t.Fatalf("dashboard %s is not JSON: %v", key, err)
			}
			var qs []string
			exprs(dash, &qs)
			for _, q := range qs {
				if err := parse("dashboard "+key, grafanaVars.Replace(q)); err != nil {
					t.Error(err)
				}
			}
			all = append(all, qs...)
		}
	}
	if len(all) == 0 {
		t.Fatal("the chart rendered with grafanaDashboard.enabled=true has no dashboard queries")
	}
	t.Logf("%d dashboard queries parse", len(all))
}

// TestTheParserRefusesABrokenExpression keeps the checks above honest: a
// typo of the kind they exist to catch is refused.
func TestTheParserRefusesABrokenExpression(t *testing.T) {
	for _, bad := range []string{
		`sum by (le) (rate(skycall_operator_endpointslice_to_registry_seconds_bucket[5m])`,
		`histogram_quantile(0.99, sum by le (rate(x_bucket[5m])))`,
		`rate(skycall_sender_dropped_total[5 m])`,
	} {
		if err := parse("test", bad); err == nil {
			t.Errorf("%q parsed; the checks above would not catch this typo", bad)
		}
	}
}
