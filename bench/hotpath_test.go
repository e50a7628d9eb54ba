// Package bench holds benchmarks that need more than the main module has:
// the skybench command compares skycall with gRPC-Go and Proto.Actor, and
// the benchmarks here measure the skycall Client alone.
package bench

import (
	"context"
	"strconv"
	"testing"

	"github.com/skycall-io/skycall/bench/internal/rawpeer"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
)

// clientOnly connects a Client to a raw peer that allocates nothing, so
// allocs/op are the Client's own (sender's BenchmarkCall also counts its
// in-process Server).
func clientOnly(b *testing.B) *sender.Client {
	b.Helper()
	peer, err := rawpeer.Start()
	if err != nil {
		b.Fatal(err)
	}
	c := sender.New(registry.NewStatic(map[string]string{"raw": peer.Addr()}))
	b.Cleanup(func() {
		c.Close()
		peer.Close()
	})
	if _, err := c.Call(context.Background(), "raw", "@echo", []byte("warm")); err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkClientOnlyCall(b *testing.B) {
	for _, size := range []int{32, 4096} {
		b.Run(sizeName(size), func(b *testing.B) {
			c := clientOnly(b)
			payload := make([]byte, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Call(ctx, "raw", "@echo", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkClientOnlyCallParallel64(b *testing.B) {
	c := clientOnly(b)
	payload := make([]byte, 32)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(32) // x GOMAXPROCS(2) = 64 goroutines on this machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Call(ctx, "raw", "@echo", payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkClientOnlySend ends with a Call that leaves after every Send, so
// the writer's work for them is inside the timed region.
func BenchmarkClientOnlySend(b *testing.B) {
	for _, size := range []int{32, 1024} {
		b.Run(sizeName(size), func(b *testing.B) {
			c := clientOnly(b)
			payload := make([]byte, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := c.Send(ctx, "raw", "@sink", payload); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := c.Call(ctx, "raw", "@echo", nil); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1024 {
		return strconv.Itoa(n/1024) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
