package interop

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender/wire"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// TestServerAnswersRawFramesByteForByteAsSkynetDoes writes the same raw
// request frames, well-formed and not, to a real skynet node and to a
// skycall Server, and compares the response frames byte for byte: the
// Server must be indistinguishable from skynet's clusteragent to a sender.
func TestServerAnswersRawFramesByteForByteAsSkynetDoes(t *testing.T) {
	sky := startSky(t, "sky", skynetpeer.Config{})
	g := startGoNode(t, "go")

	req := func(r wire.Request) []byte {
		t.Helper()
		b, err := wire.AppendRequest(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	frame := func(body ...byte) []byte { return append([]byte{byte(len(body) >> 8), byte(len(body))}, body...) }
	small := mustPack(t, "a", 1)
	echo := func(session uint32, payload []byte) []byte {
		return req(wire.Request{Name: "@echo", Session: session, Payload: payload})
	}
	// The reply payload is the request's: exactly 0x8000 bytes stays one
	// frame, one more byte makes it multipart (responses split at > 0x8000).
	exact := mustPack(t, strings.Repeat("e", 0x8000-3))
	over := mustPack(t, strings.Repeat("o", 0x8000-2))
	bigHeaderOnly := req(wire.Request{Name: "@echo", Session: 9, Payload: over})
	// Split the multipart request: header frame, then its parts.
	hdrLen := 2 + int(binary.BigEndian.Uint16(bigHeaderOnly))

	cases := []struct {
		name    string
		write   [][]byte // written with a short pause between, as separate writes
		replies int
	}{
		{"a call", [][]byte{echo(1, small)}, 1},
		{"a reply of exactly 0x8000 bytes", [][]byte{echo(2, exact)}, 1},
		{"a reply of 0x8001 bytes", [][]byte{echo(3, over)}, 1},
		{"an unknown @name", [][]byte{req(wire.Request{Name: "@nosuch", Session: 4, Payload: small})}, 1},
		{"a push to an unknown @name", [][]byte{req(wire.Request{Name: "@nosuch", Session: 5, Push: true, Payload: small})}, 1},
		{"a query for a missing name", [][]byte{req(wire.Request{Session: 6, Payload: mustPack(t, "nosuch")})}, 1},
		{"a zero-length frame, then a call", [][]byte{frame(), echo(7, small)}, 1},
		{"an unknown request type, then a call", [][]byte{frame(0x05, 1, 2, 3, 4, 5, 6, 7, 8), echo(8, small)}, 1},
		{"a call between a multipart header and its parts",
			[][]byte{bigHeaderOnly[:hdrLen], echo(10, small), bigHeaderOnly[hdrLen:]}, 2},
		{"a last part with no header, then a call", [][]byte{frame(0x03, 12, 0, 0, 0, 'x'), echo(13, small)}, 2},
		{"parts with no header, then a call", [][]byte{append(frame(append([]byte{0x02, 16, 0, 0, 0}, make([]byte, 0x8000)...)...),
			frame(0x03, 16, 0, 0, 0, 'y')...), echo(17, small)}, 2},
		{"parts shorter than the header's total, then a call",
			[][]byte{append(frame(append([]byte{0x81, 5}, "@echo\x0e\x00\x00\x00\x00\x90\x00\x00"...)...), frame(0x03, 14, 0, 0, 0, 'x')...), echo(15, small)}, 2},
		{"a trace tag, then a call", [][]byte{req(wire.Request{Name: "@echo", Session: 11, Payload: small, Trace: []byte("tag")})}, 1},
	}
	// Known differences in an error text: the frames must still agree in
	// sessions and types, so that a sender's calls fail and succeed alike.
	differs := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := exchange(t, sky.Addr, tc.write, tc.replies)
			got := exchange(t, g.addr, tc.write, tc.replies)
			t.Logf("skynet answered %s", hexFrames(want))
			if why := differs[tc.name]; why != "" {
				if !reflect.DeepEqual(sessionsAndTypes(got), sessionsAndTypes(want)) {
					t.Errorf("response frames differ in sessions or types\nskynet:  %s\nskycall: %s", hexFrames(want), hexFrames(got))
				}
				t.Logf("known difference in the error text: %s\nskycall answered %s", why, hexFrames(got))
				return
			}
			if !bytes.Equal(bytes.Join(got, nil), bytes.Join(want, nil)) {
				t.Errorf("response frames differ\nskynet:  %s\nskycall: %s", hexFrames(want), hexFrames(got))
			}
		})
	}
}

// exchange connects to addr, writes each chunk, and reads response frames
// until n responses are complete (a response ends with a frame of type 0,
// 1 or 4, the type following the session).
func exchange(t *testing.T, addr string, chunks [][]byte, n int) [][]byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	for _, c := range chunks {
		if _, err := conn.Write(c); err != nil {
			t.Fatal(err)
		}
		// Let the peer read each chunk on its own, so frames written
		// between a header and its parts really come between them.
		time.Sleep(20 * time.Millisecond)
	}
	r := bufio.NewReader(conn)
	var frames [][]byte
	for done := 0; done < n; {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			t.Fatalf("%s: reading response %d of %d: %v (frames so far %s)", addr, done+1, n, err, hexFrames(frames))
		}
		body := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("%s: reading a response frame: %v", addr, err)
		}
		frames = append(frames, append(l[:], body...))
		if len(body) < 5 {
			t.Fatalf("%s: response frame of %d bytes", addr, len(body))
		}
		if typ := body[4]; typ == 0 || typ == 1 || typ == 4 {
			done++
		}
	}
	return frames
}

// sessionsAndTypes lists each response frame's session and type.
func sessionsAndTypes(frames [][]byte) [][2]uint32 {
	var out [][2]uint32
	for _, f := range frames {
		out = append(out, [2]uint32{binary.LittleEndian.Uint32(f[2:]), uint32(f[6])})
	}
	return out
}

// hexFrames shows frames briefly: each frame's length, session, type and
// the first bytes after them.
func hexFrames(frames [][]byte) string {
	var b strings.Builder
	for _, f := range frames {
		if len(f) < 7 {
			fmt.Fprintf(&b, "[%x] ", f)
			continue
		}
		rest := f[7:]
		more := ""
		if len(rest) > 24 {
			rest, more = rest[:24], fmt.Sprintf("...(%d B)", len(f)-7)
		}
		fmt.Fprintf(&b, "[len %d session %d type %d %s%s] ", binary.BigEndian.Uint16(f), binary.LittleEndian.Uint32(f[2:]), f[6], hex.EncodeToString(rest), more)
	}
	return b.String()
}
