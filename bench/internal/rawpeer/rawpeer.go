// Package rawpeer is a minimal skynet cluster peer for measuring the
// skycall Client alone: it answers the node query like a skynet node ("name
// not found"), echoes single-frame calls and swallows single-frame pushes,
// with fixed buffers and no allocation per message, so that allocation
// counts and profiles taken in the same process belong to the Client.
//
// It knows only what a benchmark sends: single-frame requests (type 0x00
// and 0x80). Anything else closes the connection.
package rawpeer

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Peer is a listening raw peer. Close stops it and its connections.
type Peer struct {
	l      net.Listener
	pushes atomic.Int64
	calls  atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Start listens on 127.0.0.1 on a free port.
func Start() (*Peer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Peer{l: l, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the host:port to give the Client's registry.
func (p *Peer) Addr() string { return p.l.Addr().String() }

// Pushes is how many pushes the peer has read.
func (p *Peer) Pushes() int64 { return p.pushes.Load() }

// Calls is how many calls (node queries included) it has answered.
func (p *Peer) Calls() int64 { return p.calls.Load() }

// Close closes the listener and every connection and waits for the
// peer's goroutines.
func (p *Peer) Close() error {
	err := p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Peer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
			c.Close()
		}()
	}
}

var notFound = []byte("name not found")

// serve handles one connection. Its buffers start small (an idle connection
// holds 2 x 4 KiB) and grow with the traffic, as bufio does.
func (p *Peer) serve(c net.Conn) {
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	var hdr [2]byte
	body := make([]byte, 0, 256)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		if n < 9 {
			return
		}
		var session uint32
		var payload []byte
		query := false
		switch body[0] {
		case 0x00: // numeric address, single frame
			addr := binary.LittleEndian.Uint32(body[1:5])
			session = binary.LittleEndian.Uint32(body[5:9])
			payload = body[9:]
			query = addr == 0
		case 0x80: // string address, single frame
			nl := int(body[1])
			if n < 2+nl+4 {
				return
			}
			session = binary.LittleEndian.Uint32(body[2+nl : 6+nl])
			payload = body[6+nl:]
		default:
			return
		}
		if session == 0 {
			p.pushes.Add(1)
		} else {
			p.calls.Add(1)
			// Response: length, session u32 LE, type (0 error, 1 ok), payload.
			ok, reply := byte(1), payload
			if query {
				ok, reply = 0, notFound
			}
			size := 5 + len(reply)
			_ = bw.WriteByte(byte(size >> 8))
			_ = bw.WriteByte(byte(size))
			var s [4]byte
			binary.LittleEndian.PutUint32(s[:], session)
			_, _ = bw.Write(s[:])
			_ = bw.WriteByte(ok)
			_, _ = bw.Write(reply)
		}
		if br.Buffered() == 0 && bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}
