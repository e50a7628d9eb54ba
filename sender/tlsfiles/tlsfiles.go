// Package tlsfiles loads a certificate, its key and a CA bundle from files
// and keeps them current as the files change, for mutual TLS between
// skycall nodes (sender.WithMutualTLS, server.WithMutualTLS).
package tlsfiles

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// Files is a certificate, its key and a CA bundle read from files, and
// read again when they change, as when cert-manager renews a Secret mounted
// in the pod: connections made after the change use the new files, open
// connections keep theirs. It gives the configurations of mutual TLS
// between skycall nodes (server.WithMutualTLS, sender.WithMutualTLS): each side
// presents its certificate and verifies the other's against the CA bundle.
//
// Links to skynet nodes cannot use it: skynet's cluster speaks plain TCP,
// so a node that must talk to skynet keeps a plain Server (or listener)
// for them, and those links are as private as the network under them.
//
// Changes are noticed through file system events on the files' directories
// (a Kubernetes Secret volume swaps a symlink) and, in case events are
// missed, by reading the files again every interval (default 10 s). A
// change that does not parse (a half-written file) is logged and the
// previous certificates are kept.
type Files struct {
	certFile, keyFile, caFile string
	log                       logr.Logger

	mu          sync.RWMutex // guards the fields below
	cert        *tls.Certificate
	pool        *x509.CertPool
	raw         [3][]byte // the file contents last loaded: cert, key, CA
	watchCloser func() error

	stop chan struct{}
	done chan struct{}
}

// DefaultInterval is how often Files reads its files again even without a
// file system event.
const DefaultInterval = 10 * time.Second

// An Option configures Load.
type Option func(*options)

type options struct {
	log      logr.Logger
	interval time.Duration
}

// WithLogger hears about reloads and failures (default: none).
func WithLogger(l logr.Logger) Option { return func(o *options) { o.log = l } }

// WithInterval sets how often the files are read again without a file
// system event (default DefaultInterval).
func WithInterval(d time.Duration) Option { return func(o *options) { o.interval = d } }

// Load reads certFile, keyFile (PEM) and caFile (PEM bundle of the CAs that
// sign the other nodes' certificates) and watches them until Close.
func Load(certFile, keyFile, caFile string, opts ...Option) (*Files, error) {
	o := options{log: logr.Discard(), interval: DefaultInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log.GetSink() == nil {
		o.log = logr.Discard()
	}
	log, interval := o.log, o.interval
	f := &Files{certFile: certFile, keyFile: keyFile, caFile: caFile, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := f.reload(); err != nil {
		return nil, err
	}
	events := make(<-chan fsnotify.Event)
	if w, err := fsnotify.NewWatcher(); err == nil {
		for _, dir := range []string{filepath.Dir(certFile), filepath.Dir(keyFile), filepath.Dir(caFile)} {
			_ = w.Add(dir) // polling still covers a directory that cannot be watched
		}
		events = w.Events
		f.watchCloser = w.Close
	}
	go f.watch(events, interval)
	return f, nil
}

// reload reads the files and, when they changed and parse, makes them
// current. It reports whether anything changed.
func (f *Files) reload() (bool, error) {
	var raw [3][]byte
	for i, name := range []string{f.certFile, f.keyFile, f.caFile} {
		b, err := os.ReadFile(name)
		if err != nil {
			return false, fmt.Errorf("skycall: TLS files: %w", err)
		}
		raw[i] = b
	}
	f.mu.RLock()
	same := bytes.Equal(raw[0], f.raw[0]) && bytes.Equal(raw[1], f.raw[1]) && bytes.Equal(raw[2], f.raw[2])
	f.mu.RUnlock()
	if same {
		return false, nil
	}
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return false, fmt.Errorf("skycall: TLS files %s and %s: %w", f.certFile, f.keyFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw[2]) {
		return false, fmt.Errorf("skycall: TLS files: no PEM certificate in the CA bundle %s", f.caFile)
	}
	f.mu.Lock()
	f.cert, f.pool, f.raw = &cert, pool, raw
	f.mu.Unlock()
	return true, nil
}

func (f *Files) watch(events <-chan fsnotify.Event, interval time.Duration) {
	defer close(f.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
		case <-t.C:
		}
		changed, err := f.reload()
		switch {
		case err != nil:
			f.log.Error(err, "Reloading TLS files failed; keeping the certificates loaded before")
		case changed:
			f.log.Info("Reloaded TLS files", "cert", f.certFile, "ca", f.caFile)
		}
	}
}

// Close stops watching the files.
func (f *Files) Close() error {
	select {
	case <-f.stop:
		return nil
	default:
	}
	close(f.stop)
	var err error
	if f.watchCloser != nil {
		err = f.watchCloser()
	}
	<-f.done
	return err
}

func (f *Files) current() (*tls.Certificate, *x509.CertPool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.cert, f.pool
}

// verify checks a peer's chain against the current CA bundle for usage.
func (f *Files) verify(certs []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("skycall: the peer presented no certificate")
	}
	_, pool := f.current()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// ServerConfig is a Server's side: it presents the current certificate and
// requires a client certificate signed by the current CA bundle.
func (f *Files) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, _ := f.current()
			return cert, nil
		},
		// The CA bundle can change, and tls.Config.ClientCAs cannot: ask
		// for any certificate, then verify it against the current bundle.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := f.verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth); err != nil {
				return fmt.Errorf("skycall: client certificate refused: %w", err)
			}
			return nil
		},
	}
}

// ClientConfig is a Client's side: it presents the current certificate and
// verifies the Server's chain against the current CA bundle. Which node the
// certificate must name is checked once the node is known (see
// sender.WithMutualTLS), not against the dialled address: pod IPs change.
func (f *Files) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := f.current()
			return cert, nil
		},
		// Verification is VerifyConnection's, against the current bundle;
		// InsecureSkipVerify only turns off the static one.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := f.verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth); err != nil {
				return fmt.Errorf("skycall: server certificate refused: %w", err)
			}
			return nil
		},
	}
}

// NamesNode reports whether cert names node: a DNS SAN equal to node,
// or a URI SAN skycall://node.
func NamesNode(cert *x509.Certificate, node string) bool {
	for _, d := range cert.DNSNames {
		if d == node {
			return true
		}
	}
	for _, u := range cert.URIs {
		if u.Scheme == "skycall" && u.Host == node && (u.Path == "" || u.Path == "/") {
			return true
		}
	}
	return false
}
