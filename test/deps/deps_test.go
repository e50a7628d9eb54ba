// Package deps checks what a program that uses skycall links: a Client with
// a Static or File registry, or a Server, pulls in no Kubernetes package.
package deps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/test/repo"
)

// staticProgram uses the Client with a Static registry, a File registry and
// a Server, as a game binary that never talks to Kubernetes would.
const staticProgram = `package main

import (
	"context"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/tlsfiles"
)

func main() {
	c := sender.New(registry.NewStatic(map[string]string{"db": "127.0.0.1:2528"}))
	defer c.Close()
	_, _ = c.Call(context.Background(), "db", "@echo", []byte("hi"))
	f, _ := registry.NewFile("cluster.lua")
	_ = f
	s := server.New("game")
	_ = s.Close()
	_, _ = tlsfiles.Load("tls.crt", "tls.key", "ca.crt")
}
`

func TestAStaticClientAndAServerLinkNoKubernetes(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	// Inside the module, so its imports resolve to this tree; the leading
	// underscore keeps ./... patterns away from it.
	dir, err := os.MkdirTemp(root, "_deps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(staticProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "./"+filepath.Base(dir))
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	var k8s []string
	deps := strings.Fields(string(out))
	for _, p := range deps {
		if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/") || strings.Contains(p, "skycall/api/") || strings.HasSuffix(p, "/sender/kube") {
			k8s = append(k8s, p)
		}
	}
	t.Logf("%d packages linked", len(deps))
	if len(k8s) > 0 {
		t.Errorf("a program using the Client with Static and File registries and a Server links %d Kubernetes packages, want none: %v", len(k8s), k8s)
	}
}
