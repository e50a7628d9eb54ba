package sender

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"testing"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/wire"
)

// A call withdrawn while its frames wait in the write buffer (after a
// connection broke, before the next one is ready) is cut out of the buffer:
// it is certainly not sent, and the frames around it stay intact.
func TestWithdrawnCallIsCutFromWriteBuffer(t *testing.T) {
	c := New(registry.NewStatic(nil))
	defer c.Close()
	n := c.node("db")
	calls := []*call{getCall(), getCall(), getCall()}
	big := bytes.Repeat([]byte("B"), outboxChunk+5) // multipart, in a chunk of its own
	n.mu.Lock()
	n.appendLocked(&message{name: "@a", push: true}, body{payload: []byte("send-1")})
	n.appendLocked(&message{name: "@a", call: calls[0]}, body{payload: []byte("call-1")})
	n.appendLocked(&message{name: "@a", call: calls[1]}, body{payload: big})
	n.appendLocked(&message{name: "@a", push: true}, body{payload: []byte("send-2")})
	n.appendLocked(&message{name: "@a", call: calls[2]}, body{payload: []byte("call-3")})
	n.quota.msgs, n.quota.bytes = 5, 0
	if owned, written := n.withdrawLocked(calls[1]); !owned || written {
		t.Fatalf("withdraw = %v, %v; want owned, not written", owned, written)
	}
	if owned, _ := n.withdrawLocked(calls[0]); !owned {
		t.Fatal("withdraw of the first call failed")
	}
	if len(n.out.chunks) < 2 {
		t.Fatalf("%d chunks, want the large call in one of its own", len(n.out.chunks))
	}
	n.out.compact()
	buf := bytes.Join(n.out.chunks, nil)
	n.mu.Unlock()

	dec := wire.NewRequestDecoder(bufio.NewReader(bytes.NewReader(buf)), wire.Limits{})
	var got []string
	for {
		r, err := dec.Next()
		if err != nil {
			break
		}
		got = append(got, string(r.Payload))
	}
	ctEqual(t, "frames left", got, []string{"send-1", "send-2", "call-3"})
	if n.inflight.remove(calls[1]) {
		t.Fatal("withdrawn call still pending")
	}
}

func TestCallOverTLS(t *testing.T) {
	cert, pool := testkit.SelfSigned(t)
	srv := server.New("db", server.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if _, err := srv.HandleFunc("@echo", func(_ context.Context, req *server.Request) ([]byte, error) {
		return req.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	c := ctNewClient(t, registry.NewStatic(map[string]string{"db": l.Addr().String()}), WithTLS(&tls.Config{RootCAs: pool}))
	reply, err := c.Call(ctCtx(t), "db", "@echo", []byte("secret"))
	if err != nil || string(reply) != "secret" {
		t.Fatalf("Call over TLS = %q, %v", reply, err)
	}
}
