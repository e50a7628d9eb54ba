package main

import (
	"bytes"
	"math"
	"testing"

	"github.com/google/pprof/profile"
)

func TestClassifyPutsEachSampleInOneShare(t *testing.T) {
	for _, tc := range []struct {
		stack []string
		want  int
	}{
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "syscall.write", "github.com/skycall-io/skycall/sender.(*nodeConn).write"}, shareKernel},
		{[]string{"runtime.futex", "runtime.futexwakeup", "runtime.wakep", "runtime.ready"}, shareKernel},
		{[]string{"runtime.memmove", "runtime.growslice", "github.com/skycall-io/skycall/sender/wire.AppendResponse"}, shareCopies},
		{[]string{"runtime.nextFreeFast", "runtime.mallocgc", "github.com/skycall-io/skycall/sender.newRequest"}, shareGC},
		{[]string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}, shareGC},
		{[]string{"runtime.runqget", "runtime.findRunnable", "runtime.schedule"}, shareScheduler},
		{[]string{"github.com/skycall-io/skycall/sender/wire.(*RequestDecoder).single", "github.com/skycall-io/skycall/sender.(*srvConn).read"}, shareSkycall},
		{[]string{"internal/sync.(*Mutex).Unlock", "sync.(*Mutex).Unlock", "github.com/skycall-io/skycall/sender.(*node).submit"}, shareSkycall},
		{[]string{"sync/atomic.(*Int64).Add", "main.startSkycall.func2", "github.com/skycall-io/skycall/sender.(*srvService).call"}, shareBench},
		{[]string{"main.sendLoop", "main.main"}, shareBench},
		{[]string{"bufio.(*Reader).Peek", "github.com/skycall-io/skycall/sender/wire.(*frameReader).next"}, shareOther},
		{nil, shareOther},
	} {
		if got := classify(tc.stack); got != tc.want {
			t.Errorf("classify(%q) = %s, want %s", tc.stack, shareNames[got], shareNames[tc.want])
		}
	}
}

// TestProfileSharesWeighsSamplesByCPUTime builds a CPU profile with the
// pprof library, writes it as a file would be, and reads it back.
func TestProfileSharesWeighsSamplesByCPUTime(t *testing.T) {
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	sys := fn(1, "internal/runtime/syscall/linux.Syscall6")
	dec := fn(2, "github.com/skycall-io/skycall/sender/wire.(*RequestDecoder).single")
	read := fn(3, "github.com/skycall-io/skycall/sender.(*srvConn).read")
	loc := func(id uint64, fns ...*profile.Function) *profile.Location {
		l := &profile.Location{ID: id}
		for _, f := range fns {
			l.Line = append(l.Line, profile.Line{Function: f})
		}
		return l
	}
	lSys, lDec := loc(1, sys), loc(2, dec, read) // dec inlined into read
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lSys}, Value: []int64{3, 30_000_000}},
			{Location: []*profile.Location{lDec}, Value: []int64{1, 10_000_000}},
		},
		Location: []*profile.Location{lSys, lDec},
		Function: []*profile.Function{sys, dec, read},
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	sp, err := profileShares(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if sh := sp.shares; math.Abs(sh[shareKernel]-0.75) > 1e-9 || math.Abs(sh[shareSkycall]-0.25) > 1e-9 {
		t.Fatalf("shares %v: want kernel 0.75 and skycall's code 0.25", sh)
	}
	// Only the decoding sample runs under the Server's reader.
	if sp.total != 40_000_000 || sp.reader != 10_000_000 {
		t.Fatalf("CPU %v ns, reader %v ns: want 40ms and 10ms", sp.total, sp.reader)
	}
}
