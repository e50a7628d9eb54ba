package skynetagent

import (
	"strconv"
	"testing"

	"github.com/skycall-io/skycall/sender/clusterconfig/clusterconfigtest"
	"github.com/skycall-io/skycall/sender/registry"
)

// TestLuaServiceJudgesTheCorpusAsClusterConfig pushes every name and
// address of the shared corpus to a real skynet's skycall service: it
// applies exactly those clusterconfig's Go rules accept (and so the CRD,
// whose test reads the same corpus), and refuses the others.
func TestLuaServiceJudgesTheCorpusAsClusterConfig(t *testing.T) {
	sky := startSky(t, "sky1", 0, nil)
	c := newClient(t, registry.NewStatic(map[string]string{"sky1": sky.Addr}))
	corpus := clusterconfigtest.Load(t)
	gen := 0
	judge := func(what string, config map[string]any, ok bool) {
		t.Helper()
		gen++
		got := push(t, c, sky, config, gen)
		switch applied := len(got) > 0 && got[0] == true; {
		case ok && !applied:
			t.Errorf("%s: clusterconfig accepts it, skynet refuses it: %v", what, got)
		case !ok && applied:
			t.Errorf("%s: clusterconfig refuses it, skynet applies it", what)
		}
	}
	for _, n := range corpus.Names {
		judge("node name "+strconv.Quote(n.Value), map[string]any{n.Value: "127.0.0.1:9"}, n.OK)
	}
	for _, a := range corpus.Addresses {
		judge("address "+strconv.Quote(a.Value), map[string]any{"db": a.Value}, a.OK)
	}
}
