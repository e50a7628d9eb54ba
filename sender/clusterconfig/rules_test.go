package clusterconfig_test

import (
	"testing"

	"github.com/skycall-io/skycall/sender/clusterconfig"
	"github.com/skycall-io/skycall/sender/clusterconfig/clusterconfigtest"
)

// The Go rules say what the shared corpus says; the CRD's CEL rules and the
// Lua service are held to the same corpus by their own tests.
func TestRulesJudgeTheCorpusAsWritten(t *testing.T) {
	c := clusterconfigtest.Load(t)
	for _, n := range c.Names {
		if err := clusterconfig.CheckNodeName(n.Value); (err == nil) != n.OK {
			t.Errorf("CheckNodeName(%q) = %v, corpus says ok=%v", n.Value, err, n.OK)
		}
	}
	for _, a := range c.Addresses {
		if err := clusterconfig.CheckAddress(a.Value); (err == nil) != a.OK {
			t.Errorf("CheckAddress(%q) = %v, corpus says ok=%v", a.Value, err, a.OK)
		}
	}
}
