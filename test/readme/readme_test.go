// Package readme checks that the README's Go programs compile against the
// current API, so the documentation cannot drift from the code.
package readme

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

func TestReadmeProgramsCompile(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var programs []string
	for _, m := range goBlock.FindAllStringSubmatch(string(readme), -1) {
		if strings.HasPrefix(m[1], "package main\n") {
			programs = append(programs, m[1])
		}
	}
	if len(programs) < 2 {
		t.Fatalf("README has %d complete Go programs, want the client and the server", len(programs))
	}
	for i, src := range programs {
		// Inside the module, so its imports resolve to this tree; the leading
		// underscore keeps ./... patterns away from it.
		dir, err := os.MkdirTemp(root, "_readme-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "vet", "./"+filepath.Base(dir))
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("README program %d does not compile: %v\n%s\n%s", i+1, err, out, src)
		}
	}
}
