package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// Where a profiled row's CPU time goes, to tell whether the distance to the
// ceiling is skycall's or the kernel's. Each sample goes to the
// first of these that matches it.
const (
	shareKernel    = iota // the leaf is a system call or a futex: the kernel's work
	shareCopies           // the leaf is memmove or memclr: copying and clearing bytes
	shareGC               // under mallocgc or the garbage collector's workers: allocation and its collection
	shareScheduler        // under the Go scheduler: parking, waking and finding goroutines to run
	shareSkycall          // skycall's code (package sender and below), with the locks, atomics and channels it calls
	shareBench            // the benchmark's driver and handlers (package main)
	shareOther            // the rest: other runtime work, the standard library
	numShares
)

var shareNames = [numShares]string{"kernel (syscalls, futex)", "copies (memmove, memclr)", "allocation and GC", "Go scheduler", "skycall's code", "the benchmark's driver and handlers", "other"}

// kernelLeaves are the functions in which a sample is the kernel's time.
var kernelLeaves = map[string]bool{
	"internal/runtime/syscall/linux.Syscall6": true,
	"runtime.futex":   true,
	"runtime.madvise": true,
	"runtime.usleep":  true,
	"runtime.osyield": true,
	"runtime.tgkill":  true,
}

var gcFrames = map[string]bool{
	"runtime.mallocgc":            true,
	"runtime.gcBgMarkWorker":      true,
	"runtime.bgsweep":             true,
	"runtime.bgscavenge":          true,
	"runtime.gcAssistAlloc":       true,
	"runtime.growslice":           true,
	"runtime.newobject":           true,
	"runtime.makeslice":           true,
	"runtime.gcStart":             true,
	"runtime.markrootSpans":       true,
	"runtime.wbBufFlush":          true,
	"runtime.bulkBarrierPreWrite": true,
}

var schedFrames = map[string]bool{
	"runtime.schedule":     true,
	"runtime.findRunnable": true,
	"runtime.park_m":       true,
	"runtime.goready":      true,
	"runtime.ready":        true,
	"runtime.wakep":        true,
	"runtime.netpoll":      true,
	"runtime.gopark":       true,
	"runtime.goschedImpl":  true,
}

// classify returns the share a sample's stack (leaf first) belongs to.
func classify(stack []string) int {
	if len(stack) == 0 {
		return shareOther
	}
	leaf := stack[0]
	switch {
	case kernelLeaves[leaf]:
		return shareKernel
	case leaf == "runtime.memmove" || strings.HasPrefix(leaf, "runtime.memclr"):
		return shareCopies
	}
	for _, fn := range stack {
		if gcFrames[fn] {
			return shareGC
		}
	}
	for _, fn := range stack {
		if schedFrames[fn] {
			return shareScheduler
		}
	}
	// The code that called the runtime, lock, atomic or channel at the
	// leaf owns the sample.
	for _, fn := range stack {
		switch {
		case strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/") ||
			strings.HasPrefix(fn, "sync.") || strings.HasPrefix(fn, "sync/atomic."):
			continue
		case strings.HasPrefix(fn, "github.com/skycall-io/skycall/sender"):
			return shareSkycall
		case strings.HasPrefix(fn, "main."):
			return shareBench
		}
		return shareOther
	}
	return shareOther
}

// readerFrame marks the samples of a skycall Server connection's reader
// goroutine: the one Send rows wait on.
const readerFrame = "github.com/skycall-io/skycall/sender.(*srvConn).read"

// cpuSplit is what profileShares finds in a profile.
type cpuSplit struct {
	shares [numShares]float64 // fraction of the CPU time in each share
	total  float64            // CPU nanoseconds, all goroutines
	reader float64            // of which under readerFrame
}

// profileShares reads a CPU profile and splits its CPU time.
func profileShares(r io.Reader) (cpuSplit, error) {
	var out cpuSplit
	p, err := profile.Parse(r)
	if err != nil {
		return out, err
	}
	v := len(p.SampleType) - 1 // CPU profiles: samples, then nanoseconds
	var stack []string
	for _, s := range p.Sample {
		stack = stack[:0]
		for _, loc := range s.Location {
			for _, line := range loc.Line { // inlined frames first
				if line.Function != nil {
					stack = append(stack, line.Function.Name)
				}
			}
		}
		t := float64(s.Value[v])
		out.shares[classify(stack)] += t
		out.total += t
		if slices.Contains(stack, readerFrame) {
			out.reader += t
		}
	}
	if out.total == 0 {
		return out, fmt.Errorf("the profile has no samples")
	}
	for i := range out.shares {
		out.shares[i] /= out.total
	}
	return out, nil
}

// printShares prints where the profiled row's CPU time went, and its CPU
// time per operation (ops of them under the profile): the figure to A/B,
// steadier than a rate on a machine whose other work varies.
func printShares(path string, ops int64, op string) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skybench: reading the profile back:", err)
		return
	}
	defer f.Close()
	sp, err := profileShares(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skybench: reading the profile back:", err)
		return
	}
	parts := make([]string, numShares)
	for i, name := range shareNames {
		parts[i] = fmt.Sprintf("%s %.0f%%", name, 100*sp.shares[i])
	}
	fmt.Printf("where the CPU time went (both sides, one process): %s\n", strings.Join(parts, ", "))
	if ops > 0 {
		fmt.Printf("CPU time per %s: %.0f ns in all, of which %.0f ns on the Server's connection reader\n",
			op, sp.total/float64(ops), sp.reader/float64(ops))
	}
}
