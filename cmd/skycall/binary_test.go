package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/test/localcp"
)

// TestBinaryRunsAloneAndAsKubectlPlugin builds the real binary and runs it
// as a user would: directly, and as `kubectl skycall` through the real
// kubectl's plugin lookup on PATH.
func TestBinaryRunsAloneAndAsKubectlPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; not in -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-skycall")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := startNode(t, "db")
	reg := "--registry=static:db=" + db.addr

	exe := func(name string, args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("%s: %v", name, err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}

	if out, errOut, code := exe(bin, reg, "call", "db", "@store", "'set', 'k', 42"); code != 0 || out != "\"ok\"\n" {
		t.Fatalf("call: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := exe(bin, reg, "call", "nope", "@store"); code != exitUnknownNode || !strings.Contains(errOut, `node "nope" is not in the static registry`) {
		t.Fatalf("unknown node: exit %d, %q", code, errOut)
	}
	// A fresh process has the node's own text for a rejected push.
	if _, errOut, code := exe(bin, reg, "send", "db", "@nobody", "1"); code != exitRemote || !strings.Contains(errOut, "replied with an error: Invalid name (the node rejected the message") {
		t.Fatalf("rejected send: exit %d, %q", code, errOut)
	}
	// The process's own exit status, through os.Exit: 2 for usage.
	if out, errOut, code := exe(bin, "frobnicate"); code != exitUsage || out != "" || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, want %d; stdout %q, stderr %q", code, exitUsage, out, errOut)
	}
	if out, _, _ := exe(bin, "--help"); !strings.Contains(out, "kubectl skycall nodes") {
		t.Fatalf("as kubectl-skycall, help should name `kubectl skycall`:\n%s", out)
	}

	tools, err := localcp.Tools(mustRoot(t))
	kubectl := filepath.Join(tools, "kubectl")
	if _, statErr := os.Stat(kubectl); err != nil || statErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kubectl not found (%v, %v): hack/control-plane.sh builds it", err, statErr)
		}
		t.Skipf("kubectl not found (%v, %v): run hack/control-plane.sh to test the plugin through kubectl", err, statErr)
	}
	out, errOut, code := exe(kubectl, "skycall", reg, "call", "db", "@store", "'get', 'k'")
	if code != 0 || out != "42\n" {
		t.Fatalf("kubectl skycall call: exit %d, %q %q", code, out, errOut)
	}
	if _, _, code := exe(kubectl, "skycall", reg, "call", "db", "@store", "{"); code != exitUsage {
		t.Fatalf("kubectl skycall passes the exit code through: got %d, want %d", code, exitUsage)
	}

	// kubectl completes a plugin through kubectl_complete-<plugin>, as the
	// README says to install it.
	script := filepath.Join(dir, "kubectl_complete-skycall")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec kubectl-skycall __complete \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = exe(kubectl, "__complete", "skycall", reg, "ping", "")
	if code != 0 || !strings.HasPrefix(out, "db\n") {
		t.Fatalf("kubectl __complete skycall ping: exit %d, %q %q", code, out, errOut)
	}
}

func mustRoot(t *testing.T) string {
	t.Helper()
	root, err := localcp.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
