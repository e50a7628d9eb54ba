package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The ceiling: plain TCP on loopback with skynet's framing (2-byte
// big-endian length, then the body) and bufio batching (flush when nothing
// more is buffered to read), no library. The body is one kind byte, then
// the payload.
const (
	ceilEcho  = 0 // echo the frame back
	ceilCount = 1 // count it, no reply
	ceilAsk   = 2 // reply with the count so far (8 bytes)
	ceilEnd   = 3 // echo; marks the end of a pipelined run
)

type ceilSys struct {
	ln    net.Listener
	count paddedCount // as skycall's (skySys)
}

func startCeiling() (*ceilSys, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &ceilSys{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s, nil
}

func (s *ceilSys) close() { s.ln.Close() }

func readFrame(br *bufio.Reader, body []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if cap(body) < n {
		body = make([]byte, n)
	}
	body = body[:n]
	_, err := io.ReadFull(br, body)
	return body, err
}

func writeFrame(bw *bufio.Writer, kind byte, payload []byte) error {
	n := 1 + len(payload)
	bw.WriteByte(byte(n >> 8))
	bw.WriteByte(byte(n))
	bw.WriteByte(kind)
	_, err := bw.Write(payload)
	return err
}

func (s *ceilSys) serve(c net.Conn) {
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 64<<10)
	var body []byte
	var err error
	for {
		if body, err = readFrame(br, body); err != nil || len(body) == 0 {
			return
		}
		switch body[0] {
		case ceilEcho, ceilEnd:
			err = writeFrame(bw, body[0], body[1:])
		case ceilCount:
			s.count.Add(1)
		case ceilAsk:
			err = writeFrame(bw, ceilAsk, binary.LittleEndian.AppendUint64(nil, uint64(s.count.Load())))
		}
		if err != nil {
			return
		}
		if br.Buffered() == 0 && bw.Buffered() > 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

// ceilConn is one client connection.
type ceilConn struct {
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	body []byte
}

func (s *ceilSys) dial() (*ceilConn, error) {
	c, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	c.(*net.TCPConn).SetNoDelay(true)
	return &ceilConn{c: c, br: bufio.NewReaderSize(c, 64<<10), bw: bufio.NewWriterSize(c, 64<<10)}, nil
}

// roundTrip is one sequential echo.
func (cc *ceilConn) roundTrip(payload []byte) error {
	if err := writeFrame(cc.bw, ceilEcho, payload); err != nil {
		return err
	}
	if err := cc.bw.Flush(); err != nil {
		return err
	}
	var err error
	if cc.body, err = readFrame(cc.br, cc.body); err != nil {
		return err
	}
	if len(cc.body) != 1+len(payload) {
		return fmt.Errorf("echo of %d bytes, want %d", len(cc.body)-1, len(payload))
	}
	return nil
}

// pipelined writes echo frames back to back for d while another goroutine
// reads the echoes; it counts echoes until the end marker comes back.
func (s *ceilSys) pipelined(payload []byte, d time.Duration) result {
	cc, err := s.dial()
	if err != nil {
		return result{err: err}
	}
	defer cc.c.Close()
	r := result{payload: len(payload)}
	t0 := time.Now()
	werr := make(chan error, 1)
	go func() {
		deadline := t0.Add(d)
		for i := 0; ; i++ {
			if i&63 == 0 && !time.Now().Before(deadline) {
				break
			}
			if err := writeFrame(cc.bw, ceilEcho, payload); err != nil {
				werr <- err
				return
			}
		}
		writeFrame(cc.bw, ceilEnd, nil)
		werr <- cc.bw.Flush()
	}()
	var body []byte
	for {
		if body, err = readFrame(cc.br, body); err != nil {
			r.err = err
			break
		}
		if body[0] == ceilEnd {
			break
		}
		r.ops++
	}
	r.elapsed = time.Since(t0)
	if err := <-werr; err != nil && r.err == nil {
		r.err = err
	}
	return r
}

// oneWay writes count frames for d, then asks how many arrived: the
// ceiling for Send.
func (s *ceilSys) oneWay(payload []byte, o opts) result {
	cc, err := s.dial()
	if err != nil {
		return result{err: err}
	}
	defer cc.c.Close()
	ask := func() (int64, error) {
		writeFrame(cc.bw, ceilAsk, nil)
		if err := cc.bw.Flush(); err != nil {
			return 0, err
		}
		b, err := readFrame(cc.br, nil)
		if err != nil {
			return 0, err
		}
		if len(b) != 9 {
			return 0, fmt.Errorf("count reply of %d bytes", len(b))
		}
		return int64(binary.LittleEndian.Uint64(b[1:])), nil
	}
	before, err := ask()
	if err != nil {
		return result{err: err}
	}
	return sendLoop(o.duration, len(payload), maxSends,
		func() error { return writeFrame(cc.bw, ceilCount, payload) },
		func(int64) (int64, error) {
			after, err := ask()
			return after - before, err
		})
}

// ceilRR is the least a request/response API over one connection needs,
// with no library: each calling goroutine writes its frame under a mutex
// (one Write each) and waits for its reply, which a reader goroutine
// copies out, as Call's is, and hands to it over its own channel. It is
// the reference for pipelined calls from many goroutines: unlike the
// pipelined ceiling, it pays a wake-up per reply.
type ceilRR struct {
	cc      *ceilConn
	mu      sync.Mutex
	waiters []chan []byte
	frames  [][]byte // per calling goroutine, reused
	payload []byte
}

// requestResponse dials a connection for conc callers of payload; close
// it with close.
func (s *ceilSys) requestResponse(payload []byte, conc int) (*ceilRR, error) {
	if conc > 1<<16 {
		return nil, fmt.Errorf("%d callers: the caller's index is 2 bytes", conc)
	}
	cc, err := s.dial()
	if err != nil {
		return nil, err
	}
	rr := &ceilRR{cc: cc, waiters: make([]chan []byte, conc), frames: make([][]byte, conc), payload: payload}
	for i := range rr.waiters {
		rr.waiters[i] = make(chan []byte, 1)
	}
	go func() {
		var body []byte
		for {
			var err error
			if body, err = readFrame(cc.br, body); err != nil || len(body) < 3 {
				for _, w := range rr.waiters {
					close(w)
				}
				return
			}
			i := binary.BigEndian.Uint16(body[1:])
			rr.waiters[i] <- append([]byte(nil), body[3:]...)
		}
	}()
	return rr, nil
}

func (rr *ceilRR) close() { rr.cc.c.Close() }

// call is one call of caller w: the payload goes after w's index.
func (rr *ceilRR) call(w int) error {
	n := 3 + len(rr.payload)
	f := append(rr.frames[w][:0], byte(n>>8), byte(n), ceilEcho, byte(w>>8), byte(w))
	f = append(f, rr.payload...)
	rr.frames[w] = f
	rr.mu.Lock()
	_, err := rr.cc.c.Write(f)
	rr.mu.Unlock()
	if err != nil {
		return err
	}
	reply, ok := <-rr.waiters[w]
	if !ok {
		return errors.New("connection closed")
	}
	if len(reply) != len(rr.payload) {
		return fmt.Errorf("echo of %d bytes, want %d", len(reply), len(rr.payload))
	}
	return nil
}
