// Package clusterconfigtest gives tests the corpus of node names and
// addresses that every side of skycall must judge as package clusterconfig
// does: the CRD's CEL rules, the Lua service, the Go rules themselves.
package clusterconfigtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/skycall-io/skycall/sender/clusterconfig"
)

// Case is one name or address, and whether it is valid.
type Case struct {
	Value string
	OK    bool
}

// Corpus is ../testdata/corpus.json, with every Lua keyword added to the
// bad names.
type Corpus struct {
	Names     []Case
	Addresses []Case
}

// Load reads the corpus, failing t when it cannot.
func Load(t testing.TB) Corpus {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Names []struct {
			Name string
			OK   bool
		} `json:"names"`
		Addresses []struct {
			Address string
			OK      bool
		} `json:"addresses"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("corpus.json: %v", err)
	}
	var c Corpus
	for _, n := range doc.Names {
		c.Names = append(c.Names, Case{n.Name, n.OK})
	}
	for _, kw := range clusterconfig.Keywords() {
		c.Names = append(c.Names, Case{kw, false})
	}
	for _, a := range doc.Addresses {
		c.Addresses = append(c.Addresses, Case{a.Address, a.OK})
	}
	return c
}
