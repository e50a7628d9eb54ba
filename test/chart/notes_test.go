package chart_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// renderNotes renders the chart's NOTES.txt with flags. helm template
// leaves NOTES.txt out, so the chart is copied with it under another name.
func renderNotes(t *testing.T, flags ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "skycall")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "templates", "NOTES.txt"), filepath.Join(dir, "templates", "notes.txt")); err != nil {
		t.Fatal(err)
	}
	// --debug prints a template that is not YAML instead of failing on it.
	args := append([]string{"template", release, dir, "--namespace", namespace, "--kube-version", kubeVersion(t),
		"--show-only", "templates/notes.txt", "--debug"}, flags...)
	out, _ := run(t, "helm", args...)
	return out
}

// TestNotesCreateClusterNodesWhereSendersCanReadThem: the NOTES' examples
// use a namespace the sender role is bound in and the operator watches, so
// that following them as printed works.
func TestNotesCreateClusterNodesWhereSendersCanReadThem(t *testing.T) {
	apply := regexp.MustCompile(`kubectl -n (\S+) apply -f -`)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{nil, "default"},
		{[]string{"--set", "sender.namespaces={game}"}, "game"},
		{[]string{"--set", "sender.namespaces={game,shop}", "--set", "watchNamespaces={shop}"}, "shop"},
		{[]string{"--set", "watchNamespaces={shop}"}, "shop"},
	} {
		out := renderNotes(t, c.flags...)
		m := apply.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%v: NOTES have no `kubectl -n NS apply`:\n%s", c.flags, out)
		}
		if m[1] != c.want {
			t.Errorf("%v: NOTES create the example ClusterNode in %s, want %s", c.flags, m[1], c.want)
		}
	}
}
