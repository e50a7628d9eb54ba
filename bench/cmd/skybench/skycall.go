package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
)

// skyNode is the node name of the benchmark's skycall Server; a Client's
// registry must use the same name, since the Server answers the node query
// with it.
const skyNode = "bench"

// skySys is a skycall Server with @echo (Concurrent, like a gRPC handler
// that runs each request on its own goroutine) and @count (sequential, one
// queue, like a skynet service), and a Client connected to it.
type skySys struct {
	srv   *server.Server
	addr  string
	c     *sender.Client
	count paddedCount
	// -call-append: calls append their replies to a buffer per calling
	// goroutine (Client.CallAppend) instead of allocating one per Call.
	callAppend bool
}

// paddedCount is a counter alone on its cache line. The Server's @count
// handler adds to it on one core while the sending goroutine reads the
// fields next to it (s.c) on the other: sharing a line, every push would
// move it between the cores, and the bench would charge that to skycall.
type paddedCount struct {
	_ [64]byte
	atomic.Int64
	_ [56]byte
}

func startSkycall(callAppend bool) (*skySys, error) {
	s := &skySys{srv: server.New(skyNode), callAppend: callAppend}
	if _, err := s.srv.HandleFunc("@echo", func(_ context.Context, req *server.Request) ([]byte, error) {
		return req.Payload, nil
	}, server.WithConcurrent(), server.WithReuseRequests()); err != nil {
		return nil, err
	}
	if _, err := s.srv.HandleFunc("@count", func(_ context.Context, req *server.Request) ([]byte, error) {
		if req.Push {
			s.count.Add(1)
			return nil, nil
		}
		return binary.LittleEndian.AppendUint64(nil, uint64(s.count.Load())), nil
	}, server.WithReuseRequests()); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = ln.Addr().String()
	go s.srv.Serve(ln)
	s.c = sender.New(registry.NewStatic(map[string]string{skyNode: s.addr}))
	if _, err := s.c.Call(context.Background(), skyNode, "@echo", []byte("warm")); err != nil {
		s.close()
		return nil, fmt.Errorf("first call: %w", err)
	}
	return s, nil
}

func (s *skySys) close() {
	s.c.Close()
	s.srv.Close()
}

func (s *skySys) caller(payload []byte, conc int) func(int) error {
	ctx := context.Background()
	var bufs [][]byte // per calling goroutine, with -call-append
	if s.callAppend {
		bufs = make([][]byte, conc)
	}
	return func(w int) error {
		var reply []byte
		var err error
		if bufs != nil {
			reply, err = s.c.CallAppend(ctx, skyNode, "@echo", payload, bufs[w][:0])
			bufs[w] = reply
		} else {
			reply, err = s.c.Call(ctx, skyNode, "@echo", payload)
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(reply, payload) {
			return fmt.Errorf("echo returned %d bytes, want %d", len(reply), len(payload))
		}
		return nil
	}
}

// counted asks @count, with a Call that leaves after every earlier Send,
// how many pushes it has handled.
func counted(c *sender.Client) (int64, error) {
	reply, err := c.Call(context.Background(), skyNode, "@count", nil)
	if err != nil {
		return 0, err
	}
	if len(reply) != 8 {
		return 0, fmt.Errorf("@count replied %d bytes", len(reply))
	}
	return int64(binary.LittleEndian.Uint64(reply)), nil
}

func (s *skySys) sendThroughput(payload []byte, o opts) result {
	ctx := context.Background()
	before, err := counted(s.c)
	if err != nil {
		return result{err: err}
	}
	return sendLoop(o.duration, len(payload), maxSends,
		func() error { return s.c.Send(ctx, skyNode, "@count", payload) },
		func(int64) (int64, error) {
			after, err := counted(s.c)
			return after - before, err
		})
}
