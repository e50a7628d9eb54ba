package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/internal/relay"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
)

// relayTarget is the memory goal for a relay with many names and no traffic.
const relayTarget = 32 << 20

// relayChild is a relay under measurement, set up as skycall-agent --relay
// sets up its own (a Client on a registry, both registering their metrics):
// node "receiver" at to when to is not "", and idle more names, each given
// its relay address and a registry entry that is never dialled. It prints
// "addr host:port", the relay's address for "receiver" (or "ready" when
// there is none), and relays until its standard input closes.
func relayChild(to string, idle int, profile string) error {
	stopProfile, err := cpuProfile(profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	nodes := make(map[string]string, idle+1)
	names := make([]string, 0, idle+1)
	if to != "" {
		nodes["receiver"] = to
		names = append(names, "receiver")
	}
	for i := range idle {
		name := fmt.Sprintf("node%04d", i)
		nodes[name] = fmt.Sprintf("10.%d.%d.%d:2528", i>>16&255, i>>8&255, i&255)
		names = append(names, name)
	}
	reg := prometheus.NewRegistry()
	fwd := sender.New(registry.NewStatic(nodes), sender.WithRegisterer(reg))
	defer fwd.Close()
	r := relay.New(fwd, relay.WithRegisterer(reg))
	defer r.Close()
	receiver := ""
	for _, name := range names {
		addr, err := r.Address(name)
		if err != nil {
			return err
		}
		if name == "receiver" {
			receiver = addr
		}
	}
	if receiver != "" {
		fmt.Printf("addr %s\n", receiver)
	} else {
		fmt.Println("ready")
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// relayMemory starts a relay process with names idle node names, waits for
// it to settle, and prints its resident set against relayTarget.
func relayMemory(w io.Writer, names int, settle time.Duration) error {
	c, _, err := startChild("relay", "-relay-idle", strconv.Itoa(names))
	if err != nil {
		return err
	}
	defer c.stop()
	time.Sleep(settle)
	st, err := procStatus(c.pid())
	if err != nil {
		return err
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.pid()))
	fmt.Fprintf(w, "\n== Relay memory: a relay process with %d node names, each at its own loopback listener, no traffic, %s after its last Address; load average now %s\n",
		names, settle, loadAvg())
	fmt.Fprintf(w, "VmRSS %s (peak VmHWM %s), %d threads, %d open descriptors\n",
		mib(st["VmRSS"]), mib(st["VmHWM"]), st["Threads"], len(fds))
	verdict := "PASS"
	if st["VmRSS"] > relayTarget {
		verdict = "MISS"
	}
	fmt.Fprintf(w, "%s  relay RSS with %d names, idle <= %s: %s\n", verdict, names, mib(relayTarget), mib(st["VmRSS"]))
	return nil
}

// procStatus reads the numeric fields of /proc/<pid>/status, sizes in bytes.
func procStatus(pid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(data)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) == 2 && f[1] == "kB" {
			n <<= 10
		}
		out[key] = n
	}
	if _, ok := out["VmRSS"]; !ok {
		return nil, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return out, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
