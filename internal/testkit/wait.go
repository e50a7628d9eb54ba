package testkit

import (
	"strconv"
	"testing"
	"time"
)

// Eventually polls cond every 2 ms until it holds, failing the test after
// Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Seq is "prefix-0", "prefix-1", ... "prefix-(n-1)": messages whose order
// a test checks.
func Seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i)
	}
	return out
}
