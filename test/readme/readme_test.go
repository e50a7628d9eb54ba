// Package readme checks that the documentation's Go programs compile
// against the current API, and that every Go name it quotes exists, so the
// documentation cannot drift from the code.
package readme

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// docs are the Markdown files a user reads, relative to the repository.
func docs(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md", "bench/README.md", "charts/skycall/README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range more {
		rel, _ := filepath.Rel(root, f)
		files = append(files, rel)
	}
	return files
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestDocsGoSnippetsCompile: every ```go block in the docs is a complete
// program, and it compiles (go vet) against this tree.
func TestDocsGoSnippetsCompile(t *testing.T) {
	root := repoRoot(t)
	programs := 0
	for _, doc := range docs(t, root) {
		text, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range goBlock.FindAllStringSubmatch(string(text), -1) {
			src := m[1]
			if !strings.HasPrefix(src, "package main\n") {
				t.Errorf("%s: Go block %d is not a complete program (package main): a reader cannot run it and this test cannot build it", doc, i+1)
				continue
			}
			programs++
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
				t.Errorf("%s: Go program %d does not compile: %v\n%s\n%s", doc, i+1, err, out, src)
			}
		}
	}
	if programs < 2 {
		t.Fatalf("the docs hold %d complete Go programs, want at least the README's client and server", programs)
	}
}

// apiPackages are the packages whose names the docs quote as pkg.Name.
var apiPackages = map[string]string{
	"sender":        "sender",
	"server":        "sender/server",
	"kube":          "sender/kube",
	"registry":      "sender/registry",
	"tlsfiles":      "sender/tlsfiles",
	"wire":          "sender/wire",
	"luaseri":       "sender/luaseri",
	"clusterconfig": "sender/clusterconfig",
}

var quotedName = regexp.MustCompile(`\b(sender|server|kube|registry|tlsfiles|wire|luaseri|clusterconfig)\.([A-Z]\w*)`)

// TestDocsNameOnlyExistingAPI: every pkg.Name the docs quote, for the
// library's packages, is an exported name of that package.
func TestDocsNameOnlyExistingAPI(t *testing.T) {
	root := repoRoot(t)
	exported := map[string]map[string]bool{}
	for short, dir := range apiPackages {
		exported[short] = exportedNames(t, filepath.Join(root, dir))
	}
	for _, doc := range docs(t, root) {
		text, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(text), "\n") {
			for _, m := range quotedName.FindAllStringSubmatch(line, -1) {
				if !exported[m[1]][m[2]] {
					t.Errorf("%s:%d: %s.%s is not an exported name of package %s", doc, n+1, m[1], m[2], apiPackages[m[1]])
				}
			}
		}
	}
}

// exportedNames are the exported top-level names declared in dir's
// non-test Go files.
func exportedNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					names[d.Name.Name] = d.Name.IsExported()
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						names[s.Name.Name] = s.Name.IsExported()
					case *ast.ValueSpec:
						for _, id := range s.Names {
							names[id.Name] = id.IsExported()
						}
					}
				}
			}
		}
	}
	return names
}
