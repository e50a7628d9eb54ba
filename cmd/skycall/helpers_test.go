package main

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/server"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from what the commands print now")

// testTimeout bounds every wait in these tests.
const testTimeout = 20 * time.Second

// testNode is a real skycall Server on loopback with the services the
// tests call:
//
//	@store  'set', k, v -> 'ok'; 'get', k -> v (a tiny key-value store)
//	@echo   replies with the request's bytes, unchanged
//	@fail   fails with "boom: <first argument>"
//	@slow   never answers (until the caller has gone)
//	@log    records pushes and calls; replies 'logged'
type testNode struct {
	name string
	addr string

	mu     sync.Mutex // guards store and logged
	store  map[string]any
	logged [][]any
}

func startNode(t *testing.T, name string, opts ...server.Option) *testNode {
	t.Helper()
	n := &testNode{name: name, store: map[string]any{}}
	srv := server.New(name, opts...)
	must := func(_ uint32, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(srv.HandleFunc("@store", func(_ context.Context, req *server.Request) ([]byte, error) {
		vals, err := luaseri.Unpack(req.Payload)
		if err != nil || len(vals) < 2 {
			return nil, err
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		k, _ := vals[1].(string)
		if vals[0] == "set" && len(vals) == 3 {
			n.store[k] = vals[2]
			return luaseri.Pack("ok")
		}
		return luaseri.Pack(n.store[k])
	}))
	must(srv.HandleFunc("@echo", func(_ context.Context, req *server.Request) ([]byte, error) {
		return req.Payload, nil
	}, server.WithConcurrent()))
	must(srv.HandleFunc("@fail", func(_ context.Context, req *server.Request) ([]byte, error) {
		vals, _ := luaseri.Unpack(req.Payload)
		return nil, &failure{vals}
	}))
	must(srv.HandleFunc("@slow", func(ctx context.Context, _ *server.Request) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, server.WithConcurrent()))
	must(srv.HandleFunc("@log", func(_ context.Context, req *server.Request) ([]byte, error) {
		vals, _ := luaseri.Unpack(req.Payload)
		n.mu.Lock()
		n.logged = append(n.logged, vals)
		n.mu.Unlock()
		return luaseri.Pack("logged")
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return n
}

type failure struct{ vals []any }

func (f *failure) Error() string {
	if len(f.vals) > 0 {
		return "boom: " + luaseriString(f.vals[0])
	}
	return "boom"
}

func luaseriString(v any) string {
	s, _ := v.(string)
	return s
}

func (n *testNode) loggedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.logged)
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what a user sees of one command.
type result struct {
	stdout, stderr string
	code           int
}

// skycall runs the command line in-process through the cobra root, as the
// binary would, with stdin.
func skycallIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var out, errOut syncBuffer
	code := run(ctx, args, streams{in: strings.NewReader(stdin), out: &out, errOut: &errOut}, "skycall")
	return result{out.String(), errOut.String(), code}
}

func skycall(t *testing.T, args ...string) result {
	t.Helper()
	return skycallIn(t, "", args...)
}

// ok fails the test unless the command succeeded.
func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var (
	rttTable = regexp.MustCompile(`\d+\.\d{3}ms`)
	rttJSON  = regexp.MustCompile(`"rttMillis": [0-9.e+-]+`)
	columns  = regexp.MustCompile(` {3,}`)
	// A connection that keeps failing alternates between these.
	failingConn = regexp.MustCompile(`\b(backoff|connecting)\b`)
)

// normalise replaces what changes from run to run (addresses, round-trip
// times) with stable names.
func normalise(s string, addrs map[string]string) string {
	for addr, name := range addrs {
		s = strings.ReplaceAll(s, addr, name)
	}
	s = rttTable.ReplaceAllString(s, "RTTms")
	s = rttJSON.ReplaceAllString(s, `"rttMillis": RTT`)
	return failingConn.ReplaceAllString(s, "backoff")
}

// normaliseTable is normalise, and table columns become " | " so that a
// golden file does not depend on column widths.
func normaliseTable(s string, addrs map[string]string) string {
	s = normalise(s, addrs)
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, columns.ReplaceAllString(l, " | "))
	}
	return strings.Join(lines, "\n")
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

var (
	rttStatsLine = regexp.MustCompile(`rtt min/avg/max/stddev = [0-9./]+ ms`)
	pingTime     = regexp.MustCompile(`\d+\.\d{3} ms`)
	hostPort     = regexp.MustCompile(`https://127\.0\.0\.1:\d+`)
)

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
