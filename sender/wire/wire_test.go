package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// vector is one line of testdata/vectors.jsonl, made by the real skynet.
type vector struct {
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Addr        string `json:"addr"`
	Session     string `json:"session"`
	Push        string `json:"push"`
	OK          string `json:"ok"`
	PayloadHex  string `json:"payload_hex"`
	Frames      string `json:"frames"`
	NextSession string `json:"next_session"`
	Trace       string `json:"trace"`
}

func loadVectors(t testing.TB, kind string) []vector {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out []vector
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		// Refuse fields this test does not understand rather than ignore them.
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var v vector
		if err := dec.Decode(&v); err != nil {
			if strings.Contains(line, `"kind":"pack"`) {
				continue // pack vectors belong to luaseri
			}
			t.Fatalf("vector line %d: %v", i+1, err)
		}
		if v.Kind == kind {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s vectors", kind)
	}
	return out
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func atou32(t testing.TB, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

func (v vector) frames(t testing.TB) []byte {
	var b []byte
	for _, f := range strings.Split(v.Frames, "|") {
		b = append(b, unhex(t, f)...)
	}
	return b
}

func (v vector) request(t testing.TB) *Request {
	r := &Request{Session: atou32(t, v.Session), Push: v.Push == "true", Payload: unhex(t, v.PayloadHex)}
	if n, err := strconv.ParseUint(v.Addr, 10, 32); err == nil {
		r.Address = uint32(n)
	} else {
		r.Name = v.Addr
	}
	if v.Trace != "" {
		r.Trace = []byte(v.Trace)
	}
	return r
}

func (v vector) response(t testing.TB) *Response {
	return &Response{Session: atou32(t, v.Session), OK: v.OK == "true", Payload: unhex(t, v.PayloadHex)}
}

func TestAppendRequestReproducesSkynetVectors(t *testing.T) {
	for _, v := range loadVectors(t, "request") {
		t.Run(v.Name, func(t *testing.T) {
			r := v.request(t)
			want := v.frames(t)
			prefix := []byte("keep")
			got, err := AppendRequest(append([]byte(nil), prefix...), r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, prefix) {
				t.Fatal("AppendRequest clobbered dst")
			}
			if got = got[len(prefix):]; !bytes.Equal(got, want) {
				t.Fatalf("frames differ from skynet:\n got %x\nwant %x", head(got), head(want))
			}
			if n := RequestSize(r); n != len(want) {
				t.Fatalf("RequestSize = %d, want %d", n, len(want))
			}
		})
	}
}

func TestDecodeRequestVectorsGivesBackFields(t *testing.T) {
	for _, v := range loadVectors(t, "request") {
		t.Run(v.Name, func(t *testing.T) {
			want := v.request(t)
			if want.Push && len(want.Payload) < MultiPart {
				want.Session = 0 // a single-frame push carries session 0
			}
			d := NewRequestDecoder(bufio.NewReader(bytes.NewReader(v.frames(t))), Limits{})
			got, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			assertRequest(t, got, want)
			if _, err := d.Next(); err != io.EOF {
				t.Fatalf("after the vector: %v, want io.EOF", err)
			}
		})
	}
}

func TestSessionCounterMatchesVectors(t *testing.T) {
	for _, v := range loadVectors(t, "request") {
		t.Run(v.Name, func(t *testing.T) {
			c := SessionCounter{next: atou32(t, v.Session)}
			if got := c.Next(); got != atou32(t, v.Session) {
				t.Fatalf("Next = %d, want %s", got, v.Session)
			}
			if got := c.Peek(); got != atou32(t, v.NextSession) {
				t.Fatalf("after Next, Peek = %d, want next_session %s", got, v.NextSession)
			}
		})
	}
}

func TestSessionCounterStartsAtOneAndWrapsFromInt32Max(t *testing.T) {
	var c SessionCounter
	if got := c.Next(); got != 1 {
		t.Fatalf("zero value Next = %d, want 1", got)
	}
	if got := c.Next(); got != 2 {
		t.Fatalf("second Next = %d, want 2", got)
	}
	c = SessionCounter{next: math.MaxInt32 - 1}
	for _, want := range []uint32{math.MaxInt32 - 1, math.MaxInt32, 1, 2} {
		if got := c.Next(); got != want {
			t.Fatalf("Next = %d, want %d", got, want)
		}
	}
}

func TestAppendResponseReproducesSkynetVectors(t *testing.T) {
	for _, v := range loadVectors(t, "response") {
		t.Run(v.Name, func(t *testing.T) {
			r := v.response(t)
			want := v.frames(t)
			got := AppendResponse([]byte("keep"), r)[4:]
			if !bytes.Equal(got, want) {
				t.Fatalf("frames differ from skynet:\n got %x\nwant %x", head(got), head(want))
			}
			if n := ResponseSize(r); n != len(want) {
				t.Fatalf("ResponseSize = %d, want %d", n, len(want))
			}
		})
	}
}

func TestDecodeResponseVectorsGivesBackFields(t *testing.T) {
	for _, v := range loadVectors(t, "response") {
		t.Run(v.Name, func(t *testing.T) {
			want := v.response(t)
			if !want.OK && len(want.Payload) > MultiPart {
				want.Payload = want.Payload[:MultiPart] // error text is cut
			}
			d := NewResponseDecoder(bufio.NewReader(bytes.NewReader(v.frames(t))), Limits{})
			got, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			assertResponse(t, got, want)
			if _, err := d.Next(); err != io.EOF {
				t.Fatalf("after the vector: %v, want io.EOF", err)
			}
		})
	}
}

// frameTypes splits an encoded stream into frames and returns each frame's
// type byte (at index typeAt of the body) and body length.
func frameTypes(t *testing.T, b []byte, typeAt int) (types []byte, lens []int) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("dangling byte")
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b) < 2+n || n <= typeAt {
			t.Fatalf("bad frame length %d with %d bytes left", n, len(b)-2)
		}
		types = append(types, b[2+typeAt])
		lens = append(lens, n)
		b = b[2+n:]
	}
	return types, lens
}

func TestRequestSplitsAtMultiPartBoundaries(t *testing.T) {
	tests := []struct {
		size  int
		types []byte // frame types for a numeric-address call
	}{
		{0, []byte{0x00}},
		{0x7FFF, []byte{0x00}},
		{0x8000, []byte{0x01, 0x03}},
		{0x8001, []byte{0x01, 0x02, 0x03}},
		{0x10000, []byte{0x01, 0x02, 0x03}},
		{0x10001, []byte{0x01, 0x02, 0x02, 0x03}},
	}
	for _, tt := range tests {
		for _, form := range []struct {
			name string
			push bool
			addr string
			set  byte // bits added to the header type
		}{
			{"call_number", false, "", 0},
			{"push_number", true, "", 0x40},
			{"call_name", false, "@svc", 0x80},
			{"push_name", true, "@svc", 0xC0},
		} {
			t.Run(strconv.Itoa(tt.size)+"/"+form.name, func(t *testing.T) {
				r := &Request{Name: form.addr, Session: 42, Push: form.push, Payload: pattern(tt.size)}
				if form.addr == "" {
					r.Address = 7
				}
				b, err := AppendRequest(nil, r)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) != RequestSize(r) {
					t.Fatalf("RequestSize = %d, appended %d", RequestSize(r), len(b))
				}
				types, lens := frameTypes(t, b, 0)
				want := append([]byte(nil), tt.types...)
				if len(want) == 1 {
					want[0] |= form.set & 0x80 // single frames have no push bit
				} else {
					want[0] |= form.set
				}
				if !bytes.Equal(types, want) {
					t.Fatalf("frame types %x, want %x", types, want)
				}
				for i := 1; i < len(lens)-1; i++ {
					if lens[i] != 5+MultiPart {
						t.Fatalf("part %d body is %d bytes, want %d", i, lens[i], 5+MultiPart)
					}
				}
				d := NewRequestDecoder(bufio.NewReader(bytes.NewReader(b)), Limits{})
				got, err := d.Next()
				if err != nil {
					t.Fatal(err)
				}
				if form.push && len(want) == 1 {
					r.Session = 0
				}
				assertRequest(t, got, r)
			})
		}
	}
}

func TestResponseSplitsOnlyAboveMultiPart(t *testing.T) {
	tests := []struct {
		size  int
		ok    bool
		types []byte
		plen  int // payload length after decoding
	}{
		{0, true, []byte{0x01}, 0},
		{0x7FFF, true, []byte{0x01}, 0x7FFF},
		{0x8000, true, []byte{0x01}, 0x8000},
		{0x8001, true, []byte{0x02, 0x03, 0x04}, 0x8001},
		{0x10000, true, []byte{0x02, 0x03, 0x04}, 0x10000},
		{0x10001, true, []byte{0x02, 0x03, 0x03, 0x04}, 0x10001},
		{0x7FFF, false, []byte{0x00}, 0x7FFF},
		{0x8000, false, []byte{0x00}, 0x8000},
		{0x8001, false, []byte{0x00}, 0x8000},
		{0x10000, false, []byte{0x00}, 0x8000},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.size)+"/ok="+strconv.FormatBool(tt.ok), func(t *testing.T) {
			r := &Response{Session: 9, OK: tt.ok, Payload: pattern(tt.size)}
			b := AppendResponse(nil, r)
			if len(b) != ResponseSize(r) {
				t.Fatalf("ResponseSize = %d, appended %d", ResponseSize(r), len(b))
			}
			types, lens := frameTypes(t, b, 4)
			if !bytes.Equal(types, tt.types) {
				t.Fatalf("frame types %x, want %x", types, tt.types)
			}
			if len(types) > 1 && lens[0] != 9 {
				t.Fatalf("begin frame is %d bytes, want 9", lens[0])
			}
			d := NewResponseDecoder(bufio.NewReader(bytes.NewReader(b)), Limits{})
			got, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			assertResponse(t, got, &Response{Session: 9, OK: tt.ok, Payload: r.Payload[:tt.plen]})
		})
	}
}

func TestAppendRequestRejectsWhatSkynetRejects(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want error
	}{
		{"name_256_bytes", Request{Name: strings.Repeat("n", 256), Session: 1}, ErrNameLength},
		{"session_0", Request{Address: 1}, ErrInvalidSession},
		{"session_0_push", Request{Address: 1, Push: true}, ErrInvalidSession},
		{"session_above_int32max", Request{Address: 1, Session: math.MaxInt32 + 1}, ErrInvalidSession},
		{"trace_0x8001_bytes", Request{Address: 1, Session: 1, Trace: make([]byte, MaxTraceTag+1)}, ErrTraceTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendRequest(dst, &tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if string(got) != "keep" {
				t.Fatalf("dst changed to %q on error", got)
			}
			if n := RequestSize(&tt.req); n != 0 {
				t.Fatalf("RequestSize = %d for a refused request, want 0", n)
			}
		})
	}
	// The limits themselves are accepted.
	ok := []Request{
		{Name: strings.Repeat("n", 255), Session: math.MaxInt32},
		{Address: 1, Session: 1, Trace: make([]byte, MaxTraceTag)},
		{Address: 1, Session: 1, Trace: []byte{}},
	}
	for i := range ok {
		if _, err := AppendRequest(nil, &ok[i]); err != nil {
			t.Errorf("request %d at the limit refused: %v", i, err)
		}
	}
}

func TestTraceTagFrameGoesBeforeRequestAndAppliesToIt(t *testing.T) {
	small := &Request{Name: "@echo", Session: 3, Payload: []byte("hi"), Trace: []byte("(node-a-3)tag")}
	b, err := AppendRequest(nil, small)
	if err != nil {
		t.Fatal(err)
	}
	wantPrefix := append([]byte{0x00, byte(1 + len(small.Trace)), 0x04}, small.Trace...)
	if !bytes.HasPrefix(b, wantPrefix) {
		t.Fatalf("stream starts %x, want trace frame %x", head(b), wantPrefix)
	}
	large := &Request{Address: 5, Session: 4, Payload: pattern(70000), Trace: []byte("big")}
	if b, err = AppendRequest(b, large); err != nil {
		t.Fatal(err)
	}
	plain := &Request{Address: 5, Session: 5, Payload: []byte("x")}
	if b, err = AppendRequest(b, plain); err != nil {
		t.Fatal(err)
	}
	d := NewRequestDecoder(bufio.NewReader(bytes.NewReader(b)), Limits{})
	for _, want := range []*Request{small, large, plain} {
		got, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		assertRequest(t, got, want)
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func head(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func assertRequest(t *testing.T, got, want *Request) {
	t.Helper()
	if got.Address != want.Address || got.Name != want.Name || got.Session != want.Session || got.Push != want.Push {
		t.Fatalf("got address %d name %q session %d push %v, want %d %q %d %v",
			got.Address, got.Name, got.Session, got.Push, want.Address, want.Name, want.Session, want.Push)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("payload %d bytes %x, want %d bytes %x", len(got.Payload), head(got.Payload), len(want.Payload), head(want.Payload))
	}
	if (got.Trace == nil) != (want.Trace == nil) || !bytes.Equal(got.Trace, want.Trace) {
		t.Fatalf("trace %q (nil %v), want %q (nil %v)", got.Trace, got.Trace == nil, want.Trace, want.Trace == nil)
	}
}

func assertResponse(t *testing.T, got, want *Response) {
	t.Helper()
	if got.Session != want.Session || got.OK != want.OK {
		t.Fatalf("got session %d ok %v, want %d %v", got.Session, got.OK, want.Session, want.OK)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("payload %d bytes %x, want %d bytes %x", len(got.Payload), head(got.Payload), len(want.Payload), head(want.Payload))
	}
}
