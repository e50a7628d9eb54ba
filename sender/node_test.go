package sender

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender/registry"
)

func TestNodeTransitionUpdatesStateMetricAndClosedIsFinal(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := New(registry.NewStatic(nil), WithRegisterer(reg))
	defer c.Close()
	n := c.node("db")
	gauge := func(s State) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "skycall_sender_node_state" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if ctLabelsMatch(m, "db", s.String()) {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no state series for %v", s)
		return 0
	}
	if gauge(StateIdle) != 1 {
		t.Fatal("a new node is not idle in the metric")
	}
	n.mu.Lock()
	n.setStateLocked(StateConnecting, "test")
	n.setStateLocked(StateReady, "test")
	n.mu.Unlock()
	if gauge(StateIdle) != 0 || gauge(StateConnecting) != 0 || gauge(StateReady) != 1 {
		t.Fatal("the metric does not follow the transitions")
	}
	n.mu.Lock()
	n.setStateLocked(StateClosed, "test")
	n.setStateLocked(StateResolving, "test")
	st := n.state
	n.mu.Unlock()
	if st != StateClosed || gauge(StateClosed) != 1 || gauge(StateResolving) != 0 {
		t.Fatalf("left closed for %v", st)
	}
}

// Every write of node.state is in setStateLocked, so that none bypasses
// the transition log and the metric.
func TestNodeStateIsWrittenOnlyBySetStateLocked(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil || fn.Recv == nil || fn.Name.Name == "setStateLocked" {
				continue
			}
			recv := fn.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			if id, ok := recv.(*ast.Ident); !ok || id.Name != "node" {
				continue
			}
			ast.Inspect(fn.Body, func(x ast.Node) bool {
				as, ok := x.(*ast.AssignStmt)
				if !ok {
					return true
				}
				for _, lhs := range as.Lhs {
					if sel, ok := lhs.(*ast.SelectorExpr); ok && sel.Sel.Name == "state" {
						t.Errorf("%s: node.%s writes state directly; use setStateLocked", fset.Position(as.Pos()), fn.Name.Name)
					}
				}
				return true
			})
		}
	}
}
