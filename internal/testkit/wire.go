package testkit

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/wire"
)

// Timeout bounds every wait of the helpers here.
const Timeout = 10 * time.Second

// Recv waits for a value on ch, failing the test after the deadline.
func Recv[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Timeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// WireClient is a test sender written with package wire directly: it
// sends exactly the frames a test asks for.
type WireClient struct {
	t        testing.TB
	Conn     net.Conn // the connection, for tests that break it
	dec      *wire.ResponseDecoder
	Sessions wire.SessionCounter // the sessions Send numbers requests with
}

// Dial connects a WireClient to addr, closed when the test ends.
func Dial(t testing.TB, addr string) *WireClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatal(err)
	}
	return NewWireClient(t, nc)
}

// NewWireClient is a WireClient on nc, closed when the test ends.
func NewWireClient(t testing.TB, nc net.Conn) *WireClient {
	t.Cleanup(func() { nc.Close() })
	return &WireClient{
		t:    t,
		Conn: nc,
		dec:  wire.NewResponseDecoder(bufio.NewReader(nc), wire.Limits{MaxMessageSize: 64 << 20}),
	}
}

// WriteRaw writes b as it is.
func (c *WireClient) WriteRaw(b []byte) {
	c.t.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.Conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Send writes r with the next session and returns that session.
func (c *WireClient) Send(r wire.Request) uint32 {
	c.t.Helper()
	r.Session = c.Sessions.Next()
	b, err := wire.AppendRequest(nil, &r)
	if err != nil {
		c.t.Fatal(err)
	}
	c.WriteRaw(b)
	return r.Session
}

// Read returns the next response, copied.
func (c *WireClient) Read() wire.Response {
	c.t.Helper()
	resp, err := c.ReadErr(Timeout)
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	return resp
}

// ReadErr returns the next response, or the error reading it within timeout.
func (c *WireClient) ReadErr(timeout time.Duration) (wire.Response, error) {
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	r, err := c.dec.Next()
	if err != nil {
		return wire.Response{}, err
	}
	return wire.Response{Session: r.Session, OK: r.OK, Payload: bytes.Clone(r.Payload)}, nil
}

// Call sends r as a call and returns its response.
func (c *WireClient) Call(r wire.Request) wire.Response {
	c.t.Helper()
	session := c.Send(r)
	resp := c.Read()
	if resp.Session != session {
		c.t.Fatalf("response for session %d, want %d", resp.Session, session)
	}
	return resp
}

// ExpectClosed checks that the peer closed the connection.
func (c *WireClient) ExpectClosed() {
	c.t.Helper()
	resp, err := c.ReadErr(Timeout)
	var ne net.Error
	switch {
	case err == nil:
		c.t.Fatalf("got response %+v, want the connection closed", resp)
	case errors.As(err, &ne) && ne.Timeout():
		c.t.Fatalf("connection still open after %v", Timeout)
	}
}

// Pack is luaseri.Pack, failing the test on an error.
func Pack(t testing.TB, v ...any) []byte {
	t.Helper()
	b, err := luaseri.Pack(v...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Unpack is luaseri.Unpack, failing the test on an error.
func Unpack(t testing.TB, b []byte) []any {
	t.Helper()
	v, err := luaseri.Unpack(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
