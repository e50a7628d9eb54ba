package wire

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

// Small limits so the fuzzer reaches them.
var fuzzLimits = Limits{MaxMessageSize: 1 << 17, MaxPartial: 4}

func seedFuzz(f *testing.F, kind string) {
	for _, v := range loadVectors(f, kind) {
		f.Add(v.frames(f))
	}
}

// checkBounded asserts the decoder holds no more than its limits allow.
func checkBounded(t *testing.T, a *reassembly) {
	if len(a.m) > a.lim.MaxPartial {
		t.Fatalf("%d partial messages, limit %d", len(a.m), a.lim.MaxPartial)
	}
	for s, p := range a.m {
		if p.discard && p.buf != nil {
			t.Fatalf("session %d: discarded message still holds %d bytes", s, cap(p.buf))
		}
		if uint64(p.total) > uint64(a.lim.MaxMessageSize) && !p.discard {
			t.Fatalf("session %d: accepted total %d over limit", s, p.total)
		}
		if uint64(len(p.buf)) > uint64(p.total) || cap(p.buf) > 2*a.lim.MaxMessageSize+MaxFrameBody {
			t.Fatalf("session %d: buffer len %d cap %d, total %d", s, len(p.buf), cap(p.buf), p.total)
		}
	}
}

func FuzzRequestDecoder(f *testing.F) {
	seedFuzz(f, "request")
	f.Add(bytes.Join([][]byte{
		frame(b(0x04), []byte("tag")),
		frame(b(0x01), u32(5), u32(7), u32(40000)),
		frame(b(0x02), u32(7), pattern(MultiPart)),
		frame(b(0x00), u32(1), u32(2), b(1)),
		frame(b(0x03), u32(7), pattern(40000-MultiPart)),
		frame(), frame(b(0x09)), frame(b(0x03), u32(8)),
	}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewRequestDecoder(bufio.NewReader(bytes.NewReader(data)), fuzzLimits)
		for {
			req, err := d.Next()
			checkBounded(t, &d.asm)
			var de *DecodeError
			if errors.As(err, &de) {
				if de.Fatal {
					return
				}
				continue
			}
			if err != nil {
				return // io.EOF or io.ErrUnexpectedEOF
			}
			if len(req.Payload) > fuzzLimits.MaxMessageSize {
				t.Fatalf("returned %d-byte payload over the limit", len(req.Payload))
			}
			// What was decoded encodes and decodes back to itself.
			again := *req
			if again.Push && again.Session == 0 {
				again.Session = 1
			}
			enc, err := AppendRequest(nil, &again)
			if errors.Is(err, ErrInvalidSession) || errors.Is(err, ErrTraceTooLong) {
				continue // e.g. a single-frame call with session above INT32_MAX
			}
			if err != nil {
				t.Fatalf("re-encoding %+v: %v", again, err)
			}
			got, err := NewRequestDecoder(bufio.NewReader(bytes.NewReader(enc)), Limits{}).Next()
			if err != nil {
				t.Fatalf("decoding the re-encoded request: %v", err)
			}
			if again.Push && len(again.Payload) < MultiPart {
				again.Session = 0
			}
			assertRequest(t, got, &again)
		}
	})
}

func FuzzResponseDecoder(f *testing.F) {
	seedFuzz(f, "response")
	f.Add(bytes.Join([][]byte{
		frame(u32(1), b(2), u32(40000)),
		frame(u32(1), b(3), pattern(MultiPart)),
		frame(u32(2), b(0), []byte("err")),
		frame(u32(1), b(4), pattern(40000-MultiPart)),
	}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewResponseDecoder(bufio.NewReader(bytes.NewReader(data)), fuzzLimits)
		for {
			resp, err := d.Next()
			checkBounded(t, &d.asm)
			if err != nil {
				var de *DecodeError
				if errors.As(err, &de) && !de.Fatal {
					t.Fatalf("response error not fatal: %v", err)
				}
				return
			}
			if len(resp.Payload) > fuzzLimits.MaxMessageSize {
				t.Fatalf("returned %d-byte payload over the limit", len(resp.Payload))
			}
		}
	})
}
