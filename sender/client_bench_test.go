package sender

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
)

// ctBenchPeer serves @echo (a Concurrent echo) and @sink (counts pushes).
func ctBenchPeer(b *testing.B) (addr string, sunk *atomic.Int64) {
	srv := server.New("db")
	sunk = new(atomic.Int64)
	if _, err := srv.HandleFunc("@echo", func(_ context.Context, req *server.Request) ([]byte, error) {
		return req.Payload, nil
	}, server.WithConcurrent(), server.WithQueueSize(1024)); err != nil {
		b.Fatal(err)
	}
	if _, err := srv.HandleFunc("@sink", func(_ context.Context, req *server.Request) ([]byte, error) {
		sunk.Add(1)
		return nil, nil
	}, server.WithQueueSize(65536)); err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().String(), sunk
}

func ctBenchClient(b *testing.B) (*Client, *atomic.Int64) {
	addr, sunk := ctBenchPeer(b)
	c := New(registry.NewStatic(map[string]string{"db": addr}))
	b.Cleanup(func() { c.Close() })
	if _, err := c.Call(context.Background(), "db", "@echo", []byte("warm")); err != nil {
		b.Fatal(err)
	}
	return c, sunk
}

func BenchmarkSend(b *testing.B) {
	c, sunk := ctBenchClient(b)
	svc := c.Service("db", "@sink")
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := svc.Send(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = sunk
}

func BenchmarkSendParallel64(b *testing.B) {
	c, _ := ctBenchClient(b)
	svc := c.Service("db", "@sink")
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(32) // x GOMAXPROCS(2) = 64 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := svc.Send(ctx, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCall(b *testing.B) {
	c, _ := ctBenchClient(b)
	svc := c.Service("db", "@echo")
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := svc.Call(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallAppend is BenchmarkCall with the reply appended to one
// reused buffer: an allocation less per call.
func BenchmarkCallAppend(b *testing.B) {
	c, _ := ctBenchClient(b)
	svc := c.Service("db", "@echo")
	payload := make([]byte, 64)
	buf := make([]byte, 0, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = svc.CallAppend(ctx, payload, buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCallParallel64(b *testing.B) {
	c, _ := ctBenchClient(b)
	svc := c.Service("db", "@echo")
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Call(ctx, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCallByName(b *testing.B) {
	c, _ := ctBenchClient(b)
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Call(ctx, "db", "@echo", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// ctDiscardClient is a Client of a peer that confirms like a skynet node,
// then reads and discards everything: it measures the Client's side of
// Send alone. The peer answers no probe, so at cleanup it goes first and
// the Client's Close has no push left to prove.
func ctDiscardClient(b *testing.B, opts ...Option) *Client {
	addr, stop := ctDiscardPeer(b)
	c := New(registry.NewStatic(map[string]string{"db": addr}), opts...)
	b.Cleanup(func() {
		stop()
		c.Close()
	})
	return c
}

// ctDiscardPeer starts the discarding peer; stop closes it and its
// connections.
func ctDiscardPeer(b *testing.B) (addr string, stop func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	stop = func() {
		l.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
	}
	b.Cleanup(stop)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			go func() {
				defer nc.Close()
				br := bufio.NewReaderSize(nc, 1<<20)
				req, err := wire.NewRequestDecoder(br, wire.Limits{}).Next()
				if err != nil {
					return
				}
				nc.Write(wire.AppendResponse(nil, &wire.Response{Session: req.Session, Payload: []byte("name not found")}))
				io.Copy(io.Discard, br)
			}()
		}
	}()
	return l.Addr().String(), stop
}

func BenchmarkSendClientOnly(b *testing.B) {
	c := ctDiscardClient(b)
	svc := c.Service("db", "@sink")
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := svc.Send(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSendClientOnlyParallel64(b *testing.B) {
	c := ctDiscardClient(b)
	svc := c.Service("db", "@sink")
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := svc.Send(ctx, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}
