package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender/server"
)

// selfSigned returns a certificate for 127.0.0.1 and the path of its PEM.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "skycall test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

func TestTLSToAServerBuiltWithServerTLS(t *testing.T) {
	cert, caFile := selfSigned(t)
	db := startNode(t, "db", server.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	reg := staticReg("db=" + db.addr)

	skycall(t, reg, "--cacert", caFile, "call", "db", "@store", "'set', 'k', 'secret'").ok(t)
	if r := skycall(t, reg, "--tls", "--insecure", "call", "db", "@store", "'get', 'k'").ok(t); r.stdout != "\"secret\"\n" {
		t.Fatalf("call over TLS printed %q", r.stdout)
	}
	skycall(t, reg, "--cacert", caFile, "ping", "db", "-c", "1").ok(t)

	// A certificate nobody vouches for is a connection error that says so.
	r := skycall(t, reg, "--tls", "--timeout", "500ms", "ping", "db")
	if r.code != exitConnection || !strings.Contains(r.stderr, "certificate signed by unknown authority") {
		t.Fatalf("untrusted certificate: exit %d, stderr %q", r.code, r.stderr)
	}
	r = skycall(t, reg, "--cacert", filepath.Join(t.TempDir(), "missing.pem"), "ping", "db")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--cacert") {
		t.Fatalf("missing --cacert: exit %d, stderr %q", r.code, r.stderr)
	}
}
