package main

import (
	"os"
	"testing"
)

// The relay memory goal is judged on procStatus's VmRSS: it must be in
// bytes, not the kB /proc prints, or a 14 MiB relay would pass as 14 KiB.
func TestProcStatusGivesSizesInBytes(t *testing.T) {
	st, err := procStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss := st["VmRSS"]; rss < 1<<20 || rss > 1<<36 {
		t.Errorf("VmRSS = %d bytes: not this test process's resident set", rss)
	}
	if st["Threads"] < 1 {
		t.Errorf("Threads = %d, want a count of at least 1", st["Threads"])
	}
}
