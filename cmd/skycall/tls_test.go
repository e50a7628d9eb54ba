package main

import (
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/server"
)

// selfSigned returns a certificate for 127.0.0.1 and the path of its PEM.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	cert, _ := testkit.SelfSigned(t)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

func TestTLSToAServerBuiltWithTLS(t *testing.T) {
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
