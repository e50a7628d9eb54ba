package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeTourRunsAsWritten follows README.md's "A five-minute tour" on
// the cluster, from a cluster without skycall, as a user pastes it: every
// shell block after the cluster's own start (which the shared cluster has
// done) runs as written in one bash, with only the kubeconfig set and the
// PATH as the user has it, and the operator must resolve the tour's node.
func TestReadmeTourRunsAsWritten(t *testing.T) {
	c := sharedCluster(t)
	blocks := tourBlocks(t, filepath.Join(c.Root, "README.md"))
	if len(blocks) < 2 || !strings.Contains(blocks[0], "hack/cluster.sh up") || !strings.Contains(blocks[0], "hack/cluster.sh images") {
		t.Fatalf("the tour's first shell block should start the local cluster and import its images; blocks:\n%s", strings.Join(blocks, "\n----\n"))
	}
	// Earlier tests may have left the release and the tour's namespace.
	j := &journey{c: c}
	reset := func() {
		j.uninstallChart(t)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if out, err := c.Kubectl(ctx, "delete", "namespace", game, system, "--ignore-not-found", "--wait=true"); err != nil {
			t.Errorf("removing the tour's namespaces: %v\n%s", err, out)
		}
	}
	reset()
	t.Cleanup(reset)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+strings.Join(blocks[1:], "\n"))
	cmd.Dir = c.Root
	cmd.Env = c.Env()
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		var b strings.Builder
		c.DumpPods(context.Background(), &b)
		t.Fatalf("the tour failed: %v\n%s\nstate of the cluster:\n%s", err, out, b.String())
	}
	t.Logf("the tour ran in %v:\n%s", time.Since(began).Round(time.Second), out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^db\s+db\s+10\.0\.0\.7:2528\s+True\s+Resolved\s`), // kubectl get cn
		regexp.MustCompile(`(?m)^db\s.*10\.0\.0\.7:2528`),                         // skycall nodes
	} {
		if !want.Match(out) {
			t.Errorf("the tour's output lacks %s", want)
		}
	}
	if pods := regexp.MustCompile(`(?m)^\S+\s+1/1\s+Running`).FindAllString(j.kubectl(t, "get", "pods", "-n", system, "--no-headers"), -1); len(pods) != 1 {
		t.Errorf("after the tour's helm install, want the operator pod Running and Ready in %s", system)
	}
}

// tourBlocks returns the ```sh blocks of README's "A five-minute tour".
func tourBlocks(t *testing.T, readme string) []string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## A five-minute tour\n")
	if start < 0 {
		t.Fatalf("%s has no section \"A five-minute tour\"", readme)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)\n```sh\n(.*?)\n```\n").FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}
