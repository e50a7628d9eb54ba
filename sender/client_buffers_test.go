package sender

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
)

// A burst of Sends to a node that reads slowly grows the node's write
// buffers to many megabytes; once the Client has been idle a while it gives
// them back, and its heap returns to what it was before the burst.
func TestIdleClientGivesBackTheBuffersOfABurst(t *testing.T) {
	const sends, size = 32 << 10, 1024 // 32 MiB
	srv := server.New("sink")
	var got atomic.Int64
	hold := make(chan struct{})
	if _, err := srv.HandleFunc("@count", func(ctx context.Context, req *server.Request) ([]byte, error) {
		if got.Add(1) == 1 {
			select { // the first push holds the service: the Server stops reading
			case <-hold:
			case <-ctx.Done():
			}
		}
		return nil, nil
	}, server.WithQueueSize(1), server.WithReuseRequests()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.HandleFunc("@ping", func(context.Context, *server.Request) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	addr := sendertest.Serve(t, srv)
	c := ctNewClient(t, registry.NewStatic(map[string]string{"sink": addr}))
	ctx := ctCtx(t)
	if _, err := c.Call(ctx, "sink", "@ping", nil); err != nil { // connected: the burst goes to the outbox
		t.Fatal(err)
	}
	if err := c.Send(ctx, "sink", "@count", nil); err != nil { // holds the service
		t.Fatal(err)
	}
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	base := heap()
	payload := make([]byte, size)
	for i := range sends {
		if err := c.Send(ctx, "sink", "@count", payload); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	close(hold)
	testkit.Eventually(t, "every push handled", func() bool { return got.Load() == sends+1 })
	t.Logf("heap after the burst: %+d MiB over the start", (heap()-base)>>20)
	// After clientShrinkAfter (1s) of idleness the node keeps
	// clientKeepBuffer of free chunks; eventually waits up to 10s.
	testkit.Eventually(t, "the heap back within clientKeepBuffer + 4 MiB of the start", func() bool {
		return heap()-base < clientKeepBuffer+4<<20
	})
}
