package skynetpeer

import (
	"errors"
	"os"
	"testing"
)

// Required reports whether a missing skynet must fail the tests instead of
// skipping them: CI=true or SKYCALL_REQUIRE_SKYNET=1 (.ci/run sets it).
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("SKYCALL_REQUIRE_SKYNET") == "1"
}

// Require returns the skynet build directory (building it on first use), or
// ends the test: it skips, saying why and how to enable the test, when
// skynet cannot be had, and fails instead when Required. A build that was
// attempted and broke always fails.
func Require(t testing.TB) string {
	t.Helper()
	dir, err := Dir()
	if err == nil {
		return dir
	}
	if errors.Is(err, ErrUnavailable) && !Required() {
		t.Skipf("skipping: needs a real skynet node, and %v.\n%s", err, HowToEnable)
	}
	if errors.Is(err, ErrUnavailable) {
		t.Fatalf("skynet is required here (CI=true or SKYCALL_REQUIRE_SKYNET=1) but %v.\n%s", err, HowToEnable)
	}
	t.Fatalf("cannot build skynet: %v", err)
	return ""
}

// Start starts a skynet node for the test (see StartNode) and stops it when
// the test ends, by its PID. If the test failed, the node's last log lines
// are logged. A node the test stopped or killed itself is left as is.
func Start(t testing.TB, cfg Config) *Node {
	t.Helper()
	Require(t)
	if cfg.WorkDir == "" {
		cfg.WorkDir = t.TempDir()
	}
	n, err := StartNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("skynet node %s (pid %d, %s) log, last lines:\n%s", n.cfg.Name, n.Pid(), n.Addr, n.Tail(60))
		}
	})
	return n
}
