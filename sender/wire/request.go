package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// checkRequest reports why r cannot be written, as skynet's packrequest and
// packtrace would refuse it.
func checkRequest(r *Request) error {
	if len(r.Name) > 255 {
		return fmt.Errorf("wire: request name is %d bytes, want 1..255: %w", len(r.Name), ErrNameLength)
	}
	if r.Session == 0 || r.Session > maxSession {
		return fmt.Errorf("wire: request session %d: %w", r.Session, ErrInvalidSession)
	}
	if len(r.Trace) > MaxTraceTag {
		return fmt.Errorf("wire: trace tag is %d bytes, limit %d: %w", len(r.Trace), MaxTraceTag, ErrTraceTooLong)
	}
	if uint64(len(r.Payload)) > math.MaxUint32 {
		return fmt.Errorf("wire: request session %d: payload is %d bytes, limit %d: %w", r.Session, len(r.Payload), uint32(math.MaxUint32), ErrMessageTooLarge)
	}
	return nil
}

// AppendRequest appends every frame of r, each with its 2-byte big-endian
// length, to dst: an optional trace frame, then a single frame when
// len(Payload) < MultiPart, else a header and ceil(len/MultiPart) parts, the
// last of type 3. It returns dst unchanged and an error wrapping
// ErrNameLength, ErrInvalidSession, ErrTraceTooLong or ErrMessageTooLarge
// when r cannot be written. The session is validated for pushes too, since
// the caller's counter advances for them.
func AppendRequest(dst []byte, r *Request) ([]byte, error) {
	if err := checkRequest(r); err != nil {
		return dst, err
	}
	if r.Trace != nil {
		dst = appendLen(dst, 1+len(r.Trace))
		dst = append(dst, typeTrace)
		dst = append(dst, r.Trace...)
	}
	sz := len(r.Payload)
	if sz < MultiPart {
		session := r.Session
		if r.Push {
			session = 0
		}
		if r.Name == "" {
			dst = appendLen(dst, 9+sz)
			dst = append(dst, typeReqNumber)
			dst = binary.LittleEndian.AppendUint32(dst, r.Address)
		} else {
			dst = appendLen(dst, 6+len(r.Name)+sz)
			dst = append(dst, typeReqName, byte(len(r.Name)))
			dst = append(dst, r.Name...)
		}
		dst = binary.LittleEndian.AppendUint32(dst, session)
		return append(dst, r.Payload...), nil
	}
	if r.Name == "" {
		t := byte(typeMultiNumber)
		if r.Push {
			t = typeMultiPushNum
		}
		dst = appendLen(dst, 13)
		dst = append(dst, t)
		dst = binary.LittleEndian.AppendUint32(dst, r.Address)
	} else {
		t := byte(typeMultiName)
		if r.Push {
			t = typeMultiPushName
		}
		dst = appendLen(dst, 10+len(r.Name))
		dst = append(dst, t, byte(len(r.Name)))
		dst = append(dst, r.Name...)
	}
	dst = binary.LittleEndian.AppendUint32(dst, r.Session)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(sz))
	for p := r.Payload; len(p) > 0; {
		n, t := len(p), byte(typeLastPart)
		if n > MultiPart {
			n, t = MultiPart, typePart
		}
		dst = appendLen(dst, 5+n)
		dst = append(dst, t)
		dst = binary.LittleEndian.AppendUint32(dst, r.Session)
		dst = append(dst, p[:n]...)
		p = p[n:]
	}
	return dst, nil
}

// RequestSize returns how many bytes AppendRequest appends for r, or 0 when
// AppendRequest would refuse r.
func RequestSize(r *Request) int {
	if checkRequest(r) != nil {
		return 0
	}
	n := 0
	if r.Trace != nil {
		n += 3 + len(r.Trace)
	}
	sz := len(r.Payload)
	addr := 4 // numeric address
	if r.Name != "" {
		addr = 1 + len(r.Name)
	}
	if sz < MultiPart {
		return n + 2 + 1 + addr + 4 + sz
	}
	parts := (sz + MultiPart - 1) / MultiPart
	return n + 2 + 1 + addr + 8 + parts*(2+5) + sz
}

// appendLen appends a frame length, 2 bytes big-endian. Callers keep n within
// MaxFrameBody by construction.
func appendLen(dst []byte, n int) []byte {
	return append(dst, byte(n>>8), byte(n))
}
