package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// paSys is two Proto.Actor systems with remote on two loopback ports: the
// client system a, and system b holding an echo actor and a counting actor.
// Messages are wrapperspb.BytesValue, serialized by remote's protobuf
// serializer, batched by its endpoint writer over one gRPC stream.
type paSys struct {
	a, b    *actor.ActorSystem
	ra, rb  *remote.Remote
	echo    *actor.PID
	counter *actor.PID
}

// counter counts BytesValue messages and answers a StringValue with the
// count so far.
type counter struct{ n int64 }

func (c *counter) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *wrapperspb.BytesValue:
		c.n++
	case *wrapperspb.StringValue:
		ctx.Respond(wrapperspb.Int64(c.n))
	}
}

func quietLogger(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startProtoActor starts both systems. Proto.Actor reports some failures
// by panicking (a port it cannot listen on), so a panic becomes an error.
func startProtoActor() (p *paSys, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("panic while starting: %v", r)
		}
	}()
	p = &paSys{}
	p.a = actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	p.ra = remote.NewRemote(p.a, remote.Configure("127.0.0.1", 0))
	p.ra.Start()
	p.b = actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	p.rb = remote.NewRemote(p.b, remote.Configure("127.0.0.1", 0))
	p.rb.Start()
	p.echo, err = p.b.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.BytesValue); ok {
			c.Respond(m)
		}
	}), "echo")
	if err != nil {
		return nil, err
	}
	p.counter, err = p.b.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &counter{} }), "counter")
	if err != nil {
		return nil, err
	}
	if err := p.caller([]byte("warm"))(0); err != nil {
		return nil, fmt.Errorf("first request: %w", err)
	}
	return p, nil
}

func (p *paSys) close() {
	p.ra.Shutdown(false)
	p.rb.Shutdown(false)
}

func (p *paSys) caller(payload []byte) func(int) error {
	msg := wrapperspb.Bytes(payload) // read-only: shared by the workers
	return func(int) error {
		res, err := p.a.Root.RequestFuture(p.echo, msg, 30*time.Second).Result()
		if err != nil {
			return err
		}
		m, ok := res.(*wrapperspb.BytesValue)
		if !ok || len(m.Value) != len(payload) {
			return fmt.Errorf("echo returned %T, want %d bytes", res, len(payload))
		}
		return nil
	}
}

func (p *paSys) counted() (int64, error) {
	res, err := p.a.Root.RequestFuture(p.counter, wrapperspb.String("count"), 2*time.Minute).Result()
	if err != nil {
		return 0, err
	}
	n, ok := res.(*wrapperspb.Int64Value)
	if !ok {
		return 0, fmt.Errorf("counter answered %T", res)
	}
	return n.Value, nil
}

// sendThroughput sends fire-and-forget from the root context, then asks
// the counter, through the same ordered endpoint, how many arrived.
func (p *paSys) sendThroughput(payload []byte, o opts) result {
	before, err := p.counted()
	if err != nil {
		return result{err: err}
	}
	msg := wrapperspb.Bytes(payload)
	return sendLoop(o.duration, len(payload), maxSends,
		func() error { p.a.Root.Send(p.counter, msg); return nil },
		func(sent int64) (int64, error) {
			// The count request follows the sends through the same
			// endpoint, so its answer should already be final; poll in
			// case it is not, until the count stops moving for 2s.
			last, changed := int64(-1), time.Now()
			for {
				after, err := p.counted()
				if err != nil || after-before >= sent {
					return after - before, err
				}
				if after != last {
					last, changed = after, time.Now()
				} else if time.Since(changed) > 2*time.Second {
					return after - before, nil
				}
				time.Sleep(time.Millisecond)
			}
		})
}
