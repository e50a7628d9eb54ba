package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// handshakeTimeout bounds a peer's TLS handshake.
const handshakeTimeout = 10 * time.Second

// Inbound is the receiving end of mutual TLS between pods: it accepts the
// TLS connections other pods' relays make (their Clients given
// sender.WithMutualTLS), and passes each one's bytes to the local skynet,
// which speaks plain TCP on loopback. A peer without a certificate from
// the CA bundle is refused at the handshake.
type Inbound struct {
	l      net.Listener
	target string
	log    logr.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewInbound serves l with cfg (tlsfiles.Files.ServerConfig) and passes
// every connection to target, the local skynet's cluster address, once
// Serve runs.
func NewInbound(l net.Listener, cfg *tls.Config, target string, log logr.Logger) *Inbound {
	return &Inbound{l: tls.NewListener(l, cfg), target: target, log: log, conns: map[net.Conn]struct{}{}}
}

// Serve accepts until Close.
func (in *Inbound) Serve() error {
	for {
		c, err := in.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if !in.track(c) {
			c.Close()
			return nil
		}
		in.wg.Add(1)
		go in.pass(c.(*tls.Conn))
	}
}

func (in *Inbound) track(c net.Conn) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return false
	}
	in.conns[c] = struct{}{}
	return true
}

func (in *Inbound) untrack(c net.Conn) {
	in.mu.Lock()
	delete(in.conns, c)
	in.mu.Unlock()
}

// pass copies bytes both ways between a peer and the local skynet until
// either side closes, then closes both.
func (in *Inbound) pass(tc *tls.Conn) {
	defer in.wg.Done()
	defer in.untrack(tc)
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		in.log.Info("Refused a peer's TLS connection", "peer", tc.RemoteAddr().String(), "err", err.Error())
		return
	}
	up, err := net.DialTimeout("tcp", in.target, 5*time.Second)
	if err != nil {
		in.log.Error(err, "Cannot reach the local skynet for a peer", "peer", tc.RemoteAddr().String(), "skynet", in.target)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, tc)
		up.Close() // ends the copy below
	}()
	_, _ = io.Copy(tc, up)
	tc.Close() // ends the copy above
	<-done
}

// Close stops accepting and closes every connection.
func (in *Inbound) Close() error {
	in.mu.Lock()
	in.closed = true
	err := in.l.Close()
	for c := range in.conns {
		c.Close()
	}
	in.mu.Unlock()
	in.wg.Wait()
	return err
}
