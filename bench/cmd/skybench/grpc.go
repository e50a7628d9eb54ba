package main

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// rawCodec moves []byte as they are, so gRPC pays no protobuf cost: the
// comparison is transport against transport. It is chosen per call by
// content subtype; everything else is gRPC-Go's defaults.
type rawCodec struct{}

const rawCodecName = "skybench-raw"

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return rawCodecName }

func init() { encoding.RegisterCodecV2(rawCodec{}) }

const grpcEchoMethod = "/skybench.Echo/Echo"

var grpcEchoDesc = grpc.ServiceDesc{
	ServiceName: "skybench.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			if icpt == nil {
				return &in, nil
			}
			info := &grpc.UnaryServerInfo{FullMethod: grpcEchoMethod}
			return icpt(ctx, &in, info, func(_ context.Context, req any) (any, error) { return req, nil })
		},
	}},
}

// grpcSys is a gRPC-Go server with a unary echo and one ClientConn to it,
// both with default settings.
type grpcSys struct {
	srv *grpc.Server
	cc  *grpc.ClientConn
}

func startGRPC() (*grpcSys, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	srv.RegisterService(&grpcEchoDesc, struct{}{})
	go srv.Serve(ln)
	cc, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(rawCodecName)))
	if err != nil {
		srv.Stop()
		return nil, err
	}
	g := &grpcSys{srv: srv, cc: cc}
	if err := g.caller([]byte("warm"))(0); err != nil {
		g.close()
		return nil, fmt.Errorf("first call: %w", err)
	}
	return g, nil
}

func (g *grpcSys) close() {
	g.cc.Close()
	g.srv.Stop()
}

func (g *grpcSys) caller(payload []byte) func(int) error {
	ctx := context.Background()
	return func(int) error {
		in := payload
		var out []byte
		if err := g.cc.Invoke(ctx, grpcEchoMethod, &in, &out); err != nil {
			return err
		}
		if len(out) != len(payload) {
			return fmt.Errorf("echo returned %d bytes, want %d", len(out), len(payload))
		}
		return nil
	}
}
