package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/testr"

	"github.com/skycall-io/skycall/internal/sendertest"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/server"
)

// staticSource is a namespace with no ClusterNodes, loaded.
type staticSource struct{}

func (staticSource) Entries() ([]registry.Entry, bool, error) { return nil, true, nil }
func (staticSource) WatchAll(func()) func()                   { return func() {} }

// TestDeeplyNestedStatusReplyIsAnErrorAndTheAgentGoesOn: a status reply
// nested 200,000 tables deep (400 KB, what crashes a skynet node) is
// refused with luaseri.ErrTooDeep; the agent reports skynet as not
// answering, and pushes the config once a sane reply comes.
func TestDeeplyNestedStatusReplyIsAnErrorAndTheAgentGoesOn(t *testing.T) {
	const k = 200000
	deep := append(bytes.Repeat([]byte{0x0e}, k), 0x0a, 0x01)
	deep = append(deep, bytes.Repeat([]byte{0x00}, k)...)
	var sane atomic.Bool
	srv := server.New("sky")
	if _, err := srv.HandleFunc("@skycall", func(_ context.Context, req *server.Request) ([]byte, error) {
		vals, err := luaseri.Unpack(req.Payload)
		if err != nil || len(vals) == 0 {
			return nil, errors.New("bad request")
		}
		switch {
		case vals[0] == "reload":
			return luaseri.Pack(true)
		case !sane.Load():
			return deep, nil
		}
		return luaseri.Pack(map[string]any{"incarnation": "i1", "hash": "", "generation": 0})
	}); err != nil {
		t.Fatal(err)
	}
	addr := sendertest.Serve(t, srv)
	client := sender.New(registry.NewStatic(map[string]string{"sky": addr}))
	t.Cleanup(func() { client.Close() })
	token, err := NewTokenFile(filepath.Join(t.TempDir(), "token"))
	if err != nil {
		t.Fatal(err)
	}
	a := New(staticSource{}, client, Options{Node: "sky", CallTimeout: timeout, Token: token, Log: testr.New(t)}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	_, err = a.status(ctx)
	if !errors.Is(err, luaseri.ErrTooDeep) || !strings.Contains(err.Error(), `node "sky"`) {
		t.Fatalf("status: %v, want luaseri.ErrTooDeep naming the node", err)
	}
	a.sync(ctx)
	if ok, why := a.Ready(); ok || !strings.Contains(why, "does not answer") {
		t.Fatalf("Ready after the deep reply = %v, %q; want not ready, skynet not answering", ok, why)
	}
	sane.Store(true)
	a.sync(ctx)
	if ok, why := a.Ready(); !ok {
		t.Fatalf("Ready after a sane reply = false, %q; want the config pushed", why)
	}
}
