package sender

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
	"github.com/skycall-io/skycall/sender/tlsfiles"
)

func loadTestTLS(t *testing.T, p testkit.TLSPaths) *tlsfiles.Files {
	t.Helper()
	f, err := tlsfiles.Load(p.Cert, p.Key, p.Bundle, tlsfiles.WithLogger(testr.New(t)), tlsfiles.WithInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// mtlsServer serves node name with server.WithMutualTLS(files).
func mtlsServer(t *testing.T, name string, files *tlsfiles.Files) string {
	t.Helper()
	s := server.New(name, server.WithMutualTLS(files))
	sendertest.Handle(t, s, "@echo", sendertest.Echo)
	addr := sendertest.Serve(t, s)
	return addr
}

func TestMutualTLSBetweenNodesAndTheCertificateMustNameTheNode(t *testing.T) {
	ca := testkit.NewCA(t)
	srvFiles := loadTestTLS(t, ca.Files(t, t.TempDir(), "db", 10))
	addr := mtlsServer(t, "db", srvFiles)
	cliFiles := loadTestTLS(t, ca.Files(t, t.TempDir(), "game-1", 11))

	t.Run("a client with a certificate from the CA is served", func(t *testing.T) {
		c := ctNewClient(t, registry.NewStatic(map[string]string{"db": addr}), WithMutualTLS(cliFiles))
		if reply, err := c.Call(ctCtx(t), "db", "@echo", []byte("hi")); err != nil || string(reply) != "hi" {
			t.Fatalf("call over mutual TLS: %q, %v", reply, err)
		}
	})
	t.Run("a client without a certificate is refused", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.PEM)
		nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "db"})
		if err == nil {
			nc.SetReadDeadline(time.Now().Add(ctTimeout))
			_, err = nc.Read(make([]byte, 1)) // TLS 1.3: the refusal comes after the handshake
			nc.Close()
		}
		if err == nil {
			t.Fatal("a client without a certificate got through")
		}
	})
	t.Run("a client with a certificate from another CA is refused", func(t *testing.T) {
		other := loadTestTLS(t, testkit.NewCA(t).Files(t, t.TempDir(), "game-1", 12))
		c := ctNewClient(t, registry.NewStatic(map[string]string{"db": addr}), WithMutualTLS(other), WithConnectTimeout(time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := c.Call(ctx, "db", "@echo", []byte("hi")); err == nil {
			t.Fatal("a client whose CA the Server does not trust got through")
		}
	})
	t.Run("a node whose certificate names another node is refused", func(t *testing.T) {
		// A Server that answers as node "cache" but holds db's certificate.
		impostor := mtlsServer(t, "cache", srvFiles)
		c := ctNewClient(t, registry.NewStatic(map[string]string{"cache": impostor}), WithMutualTLS(cliFiles))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Call(ctx, "cache", "@echo", []byte("hi"))
		if !errors.Is(err, ErrWrongNode) || !strings.Contains(err.Error(), `does not name node "cache"`) {
			t.Fatalf("call to a node with another node's certificate: %v, want ErrWrongNode naming the certificate", err)
		}
	})
}

func TestRotatedCertificateFilesAreUsedForNewConnections(t *testing.T) {
	ca := testkit.NewCA(t)
	dir := t.TempDir()
	srvFiles := loadTestTLS(t, ca.Files(t, dir, "db", 20))
	addr := mtlsServer(t, "db", srvFiles)
	cliFiles := loadTestTLS(t, ca.Files(t, t.TempDir(), "game-1", 21))
	serial := func() int64 {
		nc, err := tls.Dial("tcp", addr, cliFiles.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		return nc.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 20 {
		t.Fatalf("serial %d, want 20", s)
	}
	ca.Files(t, dir, "db", 22) // the renewal
	testkit.Eventually(t, "new connections get the renewed certificate", func() bool { return serial() == 22 })
	// Garbage in the files keeps the last good certificate.
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsfiles.Load(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")); err == nil {
		t.Fatal("a half-written certificate file loaded without an error")
	}
	time.Sleep(5 * 20 * time.Millisecond) // five reload intervals of srvFiles
	if s := serial(); s != 22 {
		t.Fatalf("after a bad file: serial %d, want the last good one, 22", s)
	}
}
