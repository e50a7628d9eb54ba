package main

import (
	"bufio"
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/skycall-io/skycall/bench/internal/rawpeer"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/wire"
)

type allocResult struct {
	send, call, call64    float64 // Client only, against the raw peer
	decodeResp, decodeReq float64
	encodeReq             float64
	err                   error
}

// allocsPer runs f n times and returns the process's allocations per run.
// Only the Client (and its goroutines) allocates meanwhile: the raw peer
// does not.
func allocsPer(n int, f func() error) (float64, error) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for range n {
		if err := f(); err != nil {
			return 0, err
		}
	}
	runtime.ReadMemStats(&m1)
	return float64(m1.Mallocs-m0.Mallocs) / float64(n), nil
}

// loopReader serves the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func measureAllocs(peer *rawpeer.Peer, quick bool) (r allocResult) {
	n := 200000
	if quick {
		n = 20000
	}
	ctx := context.Background()
	payload := make([]byte, 32)
	c := sender.New(registry.NewStatic(map[string]string{"raw": peer.Addr()}))
	defer c.Close()
	call := func() error {
		reply, err := c.Call(ctx, "raw", "@echo", payload)
		if err == nil && len(reply) != len(payload) {
			err = fmt.Errorf("echo of %d bytes", len(reply))
		}
		return err
	}
	send := func() error { return c.Send(ctx, "raw", "@sink", payload) }
	for range 1000 { // warm: connection, buffers, pools
		if err := send(); err != nil {
			r.err = err
			return r
		}
		if err := call(); err != nil {
			r.err = err
			return r
		}
	}
	// Sends, and one Call that leaves after them, so the writer's work for
	// them is inside the window.
	i := 0
	if r.send, r.err = allocsPer(n, func() error {
		i++
		if i == n {
			return call()
		}
		return send()
	}); r.err != nil {
		return r
	}
	if r.call, r.err = allocsPer(n/4, call); r.err != nil {
		return r
	}
	// 64 goroutines calling at once (the Client's c=64 path).
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	res := closedLoop(64, 300*time.Millisecond, 32, func(int) error { return call() })
	runtime.ReadMemStats(&m1)
	if res.err != nil {
		r.err = res.err
		return r
	}
	r.call64 = float64(m1.Mallocs-m0.Mallocs) / float64(res.ops)

	// Frame codec alone.
	resp := wire.AppendResponse(nil, &wire.Response{Session: 7, OK: true, Payload: payload})
	rd := wire.NewResponseDecoder(bufio.NewReaderSize(&loopReader{data: resp}, 64<<10), wire.Limits{})
	if r.decodeResp, r.err = allocsPer(n, func() error { _, err := rd.Next(); return err }); r.err != nil {
		return r
	}
	req := &wire.Request{Name: "@echo", Session: 7, Payload: payload}
	frame, err := wire.AppendRequest(nil, req)
	if err != nil {
		r.err = err
		return r
	}
	qd := wire.NewRequestDecoder(bufio.NewReaderSize(&loopReader{data: frame}, 64<<10), wire.Limits{})
	if r.decodeReq, r.err = allocsPer(n, func() error { _, err := qd.Next(); return err }); r.err != nil {
		return r
	}
	buf := make([]byte, 0, 256)
	r.encodeReq, r.err = allocsPer(n, func() error {
		var err error
		buf, err = wire.AppendRequest(buf[:0], req)
		return err
	})
	return r
}
