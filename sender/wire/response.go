package wire

import "encoding/binary"

// AppendResponse appends every frame of r to dst, as skynet's packresponse:
// error text is cut to MultiPart bytes and always goes in one frame; an ok
// payload is split only when len(Payload) > MultiPart (strictly greater,
// unlike requests, which split at >=), into a begin frame carrying the total
// and ceil(len/MultiPart) parts, the last of type 4. Payloads must be under
// 4 GiB (the protocol's total is 32 bits).
func AppendResponse(dst []byte, r *Response) []byte {
	p := r.Payload
	if !r.OK || len(p) <= MultiPart {
		t := byte(typeRespOK)
		if !r.OK {
			t = typeRespError
			if len(p) > MultiPart {
				p = p[:MultiPart]
			}
		}
		dst = appendLen(dst, 5+len(p))
		dst = binary.LittleEndian.AppendUint32(dst, r.Session)
		dst = append(dst, t)
		return append(dst, p...)
	}
	dst = appendLen(dst, 9)
	dst = binary.LittleEndian.AppendUint32(dst, r.Session)
	dst = append(dst, typeRespMultiBegin)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p)))
	for len(p) > 0 {
		n, t := len(p), byte(typeRespLastPart)
		if n > MultiPart {
			n, t = MultiPart, typeRespPart
		}
		dst = appendLen(dst, 5+n)
		dst = binary.LittleEndian.AppendUint32(dst, r.Session)
		dst = append(dst, t)
		dst = append(dst, p[:n]...)
		p = p[n:]
	}
	return dst
}

// ResponseSize returns how many bytes AppendResponse appends for r.
func ResponseSize(r *Response) int {
	sz := len(r.Payload)
	if !r.OK {
		return 2 + 5 + min(sz, MultiPart)
	}
	if sz <= MultiPart {
		return 2 + 5 + sz
	}
	parts := (sz + MultiPart - 1) / MultiPart
	return 2 + 9 + parts*(2+5) + sz
}
