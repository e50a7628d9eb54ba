package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors, tested with errors.Is. Decoders wrap them in a
// *DecodeError; the Append functions wrap them in a plain error naming the
// bad value.
var (
	// ErrEmptyFrame: a zero-length frame. skynet logs it and keeps the
	// connection.
	ErrEmptyFrame = errors.New("wire: zero-length frame")
	// ErrUnknownType: a frame whose type byte is not in the protocol.
	ErrUnknownType = errors.New("wire: unknown frame type")
	// ErrShortFrame: a frame body too short for its type.
	ErrShortFrame = errors.New("wire: frame body too short for its type")
	// ErrFrameSize: a fixed-size frame (multipart header, response begin)
	// whose body is longer than its type allows.
	ErrFrameSize = errors.New("wire: frame body size wrong for its type")
	// ErrMessageTooLarge: a message over Limits.MaxMessageSize, or a payload
	// too large to describe in the protocol's 32-bit total.
	ErrMessageTooLarge = errors.New("wire: message too large")
	// ErrTooManyPartial: more than Limits.MaxPartial multipart messages
	// incomplete at once.
	ErrTooManyPartial = errors.New("wire: too many partial multipart messages")
	// ErrBadReassembly: a part for a session with no header, parts whose
	// total does not match the header, or a second header for a session in
	// progress. skynet replies "Invalid large req" to that session.
	ErrBadReassembly = errors.New("wire: bad multipart reassembly")
	// ErrOrphanPart: a request's last part (type 3) for a session that has
	// no header and no earlier part. It is also an ErrBadReassembly.
	// skynet's clusteragent takes it for a request without an address and
	// answers "Invalid name". Earlier parts with no header make a plain
	// ErrBadReassembly at the last part ("Invalid large req" in skynet).
	ErrOrphanPart = fmt.Errorf("%w: part without a header", ErrBadReassembly)
	// ErrBudget: the part of a multipart message would take its decoder
	// over Limits.Budget; the message is dropped, the stream stays in sync.
	ErrBudget = errors.New("wire: budget for incomplete messages exhausted")
	// ErrNameLength: a string address that is empty or over 255 bytes.
	ErrNameLength = errors.New("wire: name length must be 1..255")
	// ErrInvalidSession: a request session of 0 or above INT32_MAX.
	ErrInvalidSession = errors.New("wire: session must be 1..INT32_MAX")
	// ErrTraceTooLong: a trace tag over MaxTraceTag bytes.
	ErrTraceTooLong = errors.New("wire: trace tag too long")
)

// DecodeError reports a malformed or unacceptable frame read by a decoder.
type DecodeError struct {
	Err     error  // one of the sentinel errors above
	Type    byte   // the type byte of the offending frame (0 for an empty frame)
	Session uint32 // the session concerned; 0 when unknown or a single-frame push
	// Fatal is false when the stream is still in sync: the caller may reply
	// an error to Session (unless it is 0 or the message was a push, see
	// IsPush) and keep calling Next. When true the connection must be closed.
	Fatal bool

	msg  string // what was wrong, in words
	push bool
}

// IsPush reports whether the rejected message was a push, which must get no
// reply even when Session is set (multipart pushes carry a session).
func (e *DecodeError) IsPush() bool { return e.push }

func (e *DecodeError) Error() string {
	if e.msg != "" {
		return "wire: " + e.msg
	}
	return fmt.Sprintf("wire: frame type 0x%02x session %d: %v", e.Type, e.Session, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(err error, t byte, session uint32, fatal bool, format string, args ...any) *DecodeError {
	return &DecodeError{Err: err, Type: t, Session: session, Fatal: fatal, msg: fmt.Sprintf(format, args...)}
}
