package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/pprof/profile"
)

// Where a profiled row's CPU time goes, for issue 16's question: is the
// distance to the ceiling skycall's or the kernel's? Each sample goes to the
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

// profileShares reads a CPU profile and returns the fraction of its CPU
// time in each share.
func profileShares(r io.Reader) ([numShares]float64, error) {
	var out [numShares]float64
	p, err := profile.Parse(r)
	if err != nil {
		return out, err
	}
	v := len(p.SampleType) - 1 // CPU profiles: samples, then nanoseconds
	var total float64
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
		out[classify(stack)] += t
		total += t
	}
	if total == 0 {
		return out, fmt.Errorf("the profile has no samples")
	}
	for i := range out {
		out[i] /= total
	}
	return out, nil
}

// printShares prints where the profiled row's CPU time went.
func printShares(path string) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skybench: reading the profile back:", err)
		return
	}
	defer f.Close()
	sh, err := profileShares(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skybench: reading the profile back:", err)
		return
	}
	parts := make([]string, numShares)
	for i, name := range shareNames {
		parts[i] = fmt.Sprintf("%s %.0f%%", name, 100*sh[i])
	}
	fmt.Printf("where the CPU time went (both sides, one process): %s\n", strings.Join(parts, ", "))
}
