// Package wire implements the framing of skynet's cluster protocol
// (lualib-src/lua-cluster.c at skynet commit f19d1605): how requests, pushes
// and responses are cut into length-prefixed frames, and how a receiver puts
// them back together.
//
// The package is pure: the Append functions write into a caller's buffer and
// never do I/O; the decoders only read from the bufio.Reader they are given.
// Nothing here is safe for concurrent use; a connection owns one encoder
// buffer and one decoder.
//
// Guarantees:
//   - AppendRequest and AppendResponse produce the same bytes as the real
//     skynet (checked against golden vectors made by skynet itself).
//   - Decoders reassemble multipart messages by session, so single frames
//     interleaved between the parts of a large message are returned as soon
//     as they arrive, before the large message completes.
//   - Memory stays bounded whatever the peer sends: at most Limits.MaxPartial
//     incomplete messages per decoder, each at most Limits.MaxMessageSize,
//     and a reassembly buffer is never sized from the peer's header: it
//     grows with the bytes received, to at most twice what arrived. Parts
//     of a rejected message are read and dropped, never buffered.
//   - A *DecodeError with Fatal false leaves the stream in sync: the caller
//     may reply an error to DecodeError.Session (as skynet does) and keep
//     calling Next. Fatal errors mean the connection must be closed.
//   - Steady-state decoding and encoding of single-frame messages does no
//     allocation per message.
package wire

import (
	"math"
	"sync/atomic"
)

const (
	// MultiPart is both the size of every part but the last of a multipart
	// message and the threshold at which a message is split.
	MultiPart = 0x8000
	// MaxFrameBody is the largest frame body the 2-byte length can describe.
	MaxFrameBody = 0xFFFF
	// DefaultMaxMessageSize is the default limit on a reassembled message.
	DefaultMaxMessageSize = 16 << 20
	// DefaultMaxPartial is the default number of multipart messages a
	// decoder holds incomplete at once, per connection.
	DefaultMaxPartial = 64
	// MaxTraceTag is the longest trace tag skynet accepts.
	MaxTraceTag = 0x8000
	// NodeQueryName is a reserved name: a query (address 0) whose payload is
	// pack(NodeQueryName) is answered by a skycall Server with pack(nodeName).
	NodeQueryName = "__skycall_node"
)

// Error replies skynet's own receiver (clusteragent) sends; a receiver that
// stands in for skynet sends them as they are, so that every kind of peer
// sees the same replies.
const (
	TextInvalidName     = "Invalid name"      // an unknown @name, a part with no request
	TextNameNotFound    = "name not found"    // a query for a name not registered
	TextInvalidLargeReq = "Invalid large req" // a multipart request that does not reassemble
)

// ReadBufferSize is the read buffer of a connection, Server's or Client's,
// until messages arrive faster than they are read; then it grows to
// ReadBufferGrown (RequestDecoder.Grow, ResponseDecoder.Grow). A frame that
// fits in it is decoded in place; a larger one is read past it.
const (
	ReadBufferSize  = 16 << 10
	ReadBufferGrown = 64 << 10
)

// maxSession is the largest valid session; counters wrap from it to 1.
const maxSession = math.MaxInt32

// Request types, the first byte of a request frame body.
const (
	typeReqNumber      = 0x00 // single frame, numeric address
	typeReqName        = 0x80 // single frame, string address
	typeMultiNumber    = 0x01 // multipart header, call, numeric address
	typeMultiPushNum   = 0x41 // multipart header, push, numeric address
	typeMultiName      = 0x81 // multipart header, call, string address
	typeMultiPushName  = 0xC1 // multipart header, push, string address
	typePart           = 0x02 // a part, more follow
	typeLastPart       = 0x03 // the last part
	typeTrace          = 0x04 // trace tag for the next request
	typeRespError      = 0x00 // response: error text
	typeRespOK         = 0x01 // response: ok payload
	typeRespMultiBegin = 0x02 // response: multipart begin, total u32
	typeRespPart       = 0x03 // response: a part, more follow
	typeRespLastPart   = 0x04 // response: the last part
)

// Request is one request or push, as written by a sender or read by a
// receiver.
type Request struct {
	// Address is the numeric address, used when Name == "". Address 0 with
	// Name "" is a query: the payload is pack(name) and the answer
	// pack(handle).
	Address uint32
	// Name is a string address, 1..255 bytes; when set it is used instead of
	// Address. Names starting with '@' are cluster-registered names.
	Name string
	// Session is 1..INT32_MAX. A single-frame push is written with session 0
	// on the wire regardless (session 0 is skynet's only push marker), so a
	// decoded single-frame push has Session 0; a multipart push keeps its
	// session, which only serves to reassemble it.
	Session uint32
	// Push marks a message that gets no response.
	Push bool
	// Payload is the packed message (usually skynet.pack output).
	Payload []byte
	// Trace is an optional trace tag, at most MaxTraceTag bytes. When non-nil
	// a 0x04 frame carrying it is written before the request.
	Trace []byte
}

// Response is one response to a request.
type Response struct {
	Session uint32
	OK      bool
	// Payload is the ok payload, or the error text when OK is false.
	Payload []byte
}

// SessionCounter hands out request sessions: it starts at 1, advances by one
// for every request or push, and wraps from INT32_MAX to 1. skynet's
// clustersender (at f19d1605, checked against a real node in test/interop)
// advances only for calls and multipart pushes: a single-frame push does
// not carry its session, so it keeps it. Receivers match replies by session
// alone and never see the difference; PROTOCOL.md's "still advances" is
// skycall's rule, not skynet's. The zero value is ready to use. It is not
// safe for concurrent use: callers hold their own lock.
type SessionCounter struct {
	next uint32 // 0 means 1
}

// Next returns the session for the next request and advances the counter.
func (s *SessionCounter) Next() uint32 {
	n := s.Peek()
	if n >= maxSession {
		s.next = 1
	} else {
		s.next = n + 1
	}
	return n
}

// Peek returns the session Next will return, without advancing.
func (s *SessionCounter) Peek() uint32 {
	if s.next == 0 || s.next > maxSession {
		return 1
	}
	return s.next
}

// Limits bound what a decoder buffers for one connection.
type Limits struct {
	MaxMessageSize int // largest reassembled message; 0 means DefaultMaxMessageSize
	MaxPartial     int // incomplete multipart messages at once; 0 means DefaultMaxPartial
	// Budget, when set, bounds the reassembly buffers of every decoder
	// sharing it (a Server's connections): a message whose next part would
	// go over it is dropped with ErrBudget.
	Budget *Budget
}

// Budget is a number of bytes shared by decoders, for the buffers of
// messages being reassembled. A decoder sharing one keeps at most 64 KiB
// outside it, for reuse. It is safe for concurrent use.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of max bytes.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Used is how many bytes the decoders hold now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Max is the budget's size.
func (b *Budget) Max() int64 { return b.max }

func (b *Budget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *Budget) give(n int64) { b.used.Add(-n) }

func (l Limits) resolve() Limits {
	if l.MaxMessageSize <= 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	if l.MaxPartial <= 0 {
		l.MaxPartial = DefaultMaxPartial
	}
	return l
}
