package wire

import (
	"bufio"
	"testing"
)

// loopReader serves the same bytes forever, so a decoder benchmark measures
// decoding, not the setup of a reader.
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

func benchmarkDecodeRequest(b *testing.B, r *Request) {
	stream := mustRequest(b, r)
	d := NewRequestDecoder(bufio.NewReaderSize(&loopReader{data: stream}, 64<<10), Limits{})
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	b.Run("name_5B", func(b *testing.B) {
		benchmarkDecodeRequest(b, &Request{Name: "@echo", Session: 3, Payload: []byte("hello")})
	})
	b.Run("number_100B", func(b *testing.B) {
		benchmarkDecodeRequest(b, &Request{Address: 10, Session: 3, Payload: pattern(100)})
	})
	b.Run("multipart_70000B", func(b *testing.B) {
		benchmarkDecodeRequest(b, &Request{Name: "@echo", Session: 3, Payload: pattern(70000)})
	})
}

func BenchmarkAppendRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		req  *Request
	}{
		{"name_5B", &Request{Name: "@echo", Session: 3, Payload: []byte("hello")}},
		{"multipart_70000B", &Request{Name: "@echo", Session: 3, Payload: pattern(70000)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, RequestSize(bc.req))
			b.SetBytes(int64(RequestSize(bc.req)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var err error
				if buf, err = AppendRequest(buf[:0], bc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeResponse(b *testing.B) {
	for _, bc := range []struct {
		name string
		resp *Response
	}{
		{"ok_5B", &Response{Session: 3, OK: true, Payload: []byte("hello")}},
		{"multipart_70000B", &Response{Session: 3, OK: true, Payload: pattern(70000)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			stream := AppendResponse(nil, bc.resp)
			d := NewResponseDecoder(bufio.NewReaderSize(&loopReader{data: stream}, 64<<10), Limits{})
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
