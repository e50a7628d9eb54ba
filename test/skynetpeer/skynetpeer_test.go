package skynetpeer

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

func TestNodeListensAndStopLeavesNoProcess(t *testing.T) {
	Require(t)
	n, err := StartNode(Config{Name: "smoke", Start: "interop_main", LuaPath: []string{filepath.Join("..", "interop", "lua")}})
	if err != nil {
		t.Fatal(err)
	}
	pid := n.Pid()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.WaitLog(ctx, regexp.MustCompile(`skycall-interop listening 127\.0\.0\.1:(\d+)`)); err != nil {
		t.Fatal(err)
	}
	if cpu, err := n.CPUTime(); err != nil {
		t.Errorf("CPU time of the running node: %v", err)
	} else {
		t.Logf("skynet node started, listening on %s, CPU so far %v", n.Addr, cpu)
	}
	// It read its config and its Lua files: the benchmarks' syscall counts
	// come from the same place.
	if u, err := ProcessUsage(pid); err != nil {
		t.Errorf("usage of the running node: %v", err)
	} else if u.ReadCalls == 0 {
		t.Errorf("usage of the running node counts no read system call: %+v", u)
	}
	n.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("skynet pid %d still exists after Stop (kill -0: %v)", pid, err)
	}
}

func TestStartFailsClearlyWhenTheStartServiceIsMissing(t *testing.T) {
	Require(t)
	_, err := StartNode(Config{Name: "nostart", Start: "no_such_service", ListenTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("StartNode succeeded with a start service that does not exist")
	}
	if !regexp.MustCompile(`no_such_service`).MatchString(err.Error()) {
		t.Errorf("error does not name the missing service or show the log: %v", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
}
