package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/kube"
)

// runSender is a long-lived sender, as a game server pod would be: one
// kube.NewClient client for the process's life, driven over HTTP so
// that a test or the cluster demo decides when messages are issued:
//
//	GET /healthz                         200 once the client exists
//	GET /state?node=NAME                 the node's connection state
//	GET /send?to=A,B&first=1&count=6     issue messages (as `send`), streaming
//	                                     what happens; the last line is
//	                                     "all replies received" or "error: ..."
//	GET /load/start?to=A,B&callers=64&callevery=100ms&pushevery=20ms&max=5m
//	                                     start a bounded load (see load.go)
//	GET /load/stop                       stop it; answers its report
//
// One batch at a time, so that messages are numbered in the order issued.
func runSender(args []string) error {
	fs := flag.NewFlagSet("sender", flag.ExitOnError)
	listen := fs.String("listen", ":8080", "HTTP address of the control endpoints")
	timeout := fs.Duration("timeout", 120*time.Second, "how long one batch may take")
	_ = fs.Parse(args)

	reg := prometheus.NewRegistry()
	c, err := kube.NewClient(sender.WithRegisterer(reg), sender.WithCallTimeout(*timeout))
	if err != nil {
		return err
	}
	defer c.Close()

	var batch sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, c.State(r.URL.Query().Get("node")))
	})
	loadHandlers(mux, c, reg, *timeout)
	mux.HandleFunc("GET /send", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		first, err1 := strconv.Atoi(q.Get("first"))
		count, err2 := strconv.Atoi(q.Get("count"))
		if q.Get("to") == "" || err1 != nil || err2 != nil || first < 1 || count < 1 || count > 10000 {
			http.Error(w, "want /send?to=NODE[,NODE]&first=N&count=N (1..10000)", http.StatusBadRequest)
			return
		}
		batch.Lock()
		defer batch.Unlock()
		ctx, cancel := context.WithTimeout(r.Context(), *timeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		out := &lockedWriter{w: flushWriter{w}}
		fmt.Printf("batch: %s first=%d count=%d\n", q.Get("to"), first, count)
		if err := issue(ctx, c, reg, out, strings.Split(q.Get("to"), ","), first, count); err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
			fmt.Printf("batch failed: %v\n", err)
			return
		}
		fmt.Fprintln(out, "all replies received")
		fmt.Println("batch done")
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("sender listening on %s (namespace's ClusterNodes through the in-cluster API)\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// flushWriter sends every line to the client as it is written.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f flushWriter) Flush()                      { http.NewResponseController(f.w).Flush() }
