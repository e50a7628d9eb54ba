// Command skycall-agent is a sidecar for skynet pods: it follows the
// namespace's ClusterNodes (with the skycall-sender role's get, list and
// watch, nothing else) and pushes the whole cluster config to the local
// skynet node over loopback, where skycall's Lua service (lua/skycall)
// checks the agent's token, validates the config and applies it with
// cluster.reload. The token is a file the agent writes on a volume shared
// with skynet's container only (--token-file), so no one outside the pod
// can push. It pushes on every
// change (coalesced) and again when skynet restarts, and serves /readyz
// (ready once skynet has the current config), /healthz and /metrics.
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
	"syscall"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skycall-io/skycall/internal/relay"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/clusterconfig"
	"github.com/skycall-io/skycall/sender/kube"
	"github.com/skycall-io/skycall/sender/registry"
	"github.com/skycall-io/skycall/sender/tlsfiles"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "skycall-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o              Options
		skynetAddr     string
		listen         string
		verbose        int
		connectTimeout time.Duration
		tokenPath      string
		relayOn        bool
		relayWait      time.Duration
		relayLinger    time.Duration
		tlsCert        string
		tlsKey         string
		tlsCA          string
		tlsListen      string
	)
	flag.StringVar(&o.Node, "node", os.Getenv("SKYCALL_NODE"),
		"The local skynet node's cluster name (default $SKYCALL_NODE); the agent checks skynet answers as this node.")
	flag.StringVar(&skynetAddr, "skynet", "127.0.0.1:2528", "The local skynet node's cluster address (its cluster.open port).")
	flag.StringVar(&o.Service, "service", "@skycall", "The name skycall's Lua service registered in skynet.")
	flag.BoolVar(&o.NoWait, "nowaiting", false,
		"Push __nowaiting = true: skynet callers of a name the namespace has no ClusterNode for fail at once instead of waiting.")
	flag.DurationVar(&o.Interval, "interval", time.Second,
		"How often to ask skynet what config it has; bounds how long a restarted skynet runs without its config.")
	flag.DurationVar(&o.CallTimeout, "call-timeout", 5*time.Second, "Bound on one call to skynet.")
	flag.DurationVar(&o.ReadyLag, "ready-lag", 10*time.Second,
		"How long skynet may be behind a change and the agent still report ready.")
	flag.StringVar(&tokenPath, "token-file", envOr("SKYCALL_TOKEN_FILE", "/run/skycall/token"),
		"Where to write the token that proves pushes are this agent's (default $SKYCALL_TOKEN_FILE): on a volume only this pod's containers mount, named by skynet's skycall_token_file.")
	flag.DurationVar(&o.TokenRotate, "token-rotate", time.Hour, "How often to write a new token (0: only at start).")
	flag.DurationVar(&connectTimeout, "connect-timeout", 2*time.Second, "Bound on one attempt to connect to skynet.")
	flag.BoolVar(&relayOn, "relay", false,
		"Relay mode: point every other node's name at a loopback port of this agent, which forwards skynet's cluster traffic through a skycall Client (queued through a peer's rollout, bounded waits). Off: skynet gets each node's own address.")
	flag.DurationVar(&relayWait, "relay-wait", relay.DefaultWait,
		"Relay mode: how long a call from skynet may wait for its node before skynet's caller gets an error.")
	flag.DurationVar(&relayLinger, "relay-linger", 25*time.Second,
		"Relay mode: on SIGTERM, how long to keep relaying while skynet still has connections open (it usually stops at the same time).")
	flag.StringVar(&tlsCert, "relay-tls-cert", "", "Relay mode with mutual TLS between pods: this pod's certificate (PEM), naming its node (DNS SAN NODE or URI SAN skycall://NODE); reloaded when it changes.")
	flag.StringVar(&tlsKey, "relay-tls-key", "", "Relay mode with mutual TLS: the certificate's key (PEM).")
	flag.StringVar(&tlsCA, "relay-tls-ca", "", "Relay mode with mutual TLS: the CA bundle (PEM) that signs every pod's certificate.")
	flag.StringVar(&tlsListen, "relay-tls-listen", ":2529",
		"Relay mode with mutual TLS: where other pods' relays connect (the port the ClusterNodes name); their bytes go to --skynet as they are.")
	flag.StringVar(&listen, "listen", ":9090", "Address of /readyz, /healthz and /metrics (plain HTTP).")
	flag.IntVar(&verbose, "v", 0, "Log verbosity: 1 logs every change and retry.")
	flag.Parse()
	if o.Node == "" {
		return errors.New("no node name: set --node or SKYCALL_NODE (the local skynet node's cluster name)")
	}
	if err := clusterconfig.CheckNodeName(o.Node); err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	log := funcr.NewJSON(func(obj string) { fmt.Fprintln(os.Stderr, obj) }, funcr.Options{Verbosity: verbose})
	o.Log = log
	token, err := NewTokenFile(tokenPath)
	if err != nil {
		return err
	}
	o.Token = token

	cfg, ns, err := kube.InClusterConfig()
	if err != nil {
		return err
	}
	src, err := kube.NewRegistry(cfg, ns, kube.WithLogger(log))
	if err != nil {
		return err
	}
	defer src.Close()
	client := sender.New(registry.NewStatic(map[string]string{o.Node: skynetAddr}),
		sender.WithLogger(log.V(1)), sender.WithConnectTimeout(connectTimeout),
		sender.WithBackoff(50*time.Millisecond, time.Second))
	defer client.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var rl *relay.Relay
	if relayOn {
		opts := []sender.Option{sender.WithLogger(log.WithName("relay")), sender.WithRegisterer(reg)}
		if tlsCert != "" || tlsKey != "" || tlsCA != "" {
			files, err := tlsfiles.Load(tlsCert, tlsKey, tlsCA, tlsfiles.WithLogger(log.WithName("tls")))
			if err != nil {
				return fmt.Errorf("--relay-tls-cert, --relay-tls-key, --relay-tls-ca: %w", err)
			}
			defer files.Close()
			opts = append(opts, sender.WithMutualTLS(files))
			tl, err := net.Listen("tcp", tlsListen)
			if err != nil {
				return fmt.Errorf("--relay-tls-listen: %w", err)
			}
			in := relay.NewInbound(tl, files.ServerConfig(), skynetAddr, log.WithName("inbound"))
			go func() {
				if err := in.Serve(); err != nil {
					log.Error(err, "Mutual TLS listener stopped")
				}
			}()
			defer in.Close()
			log.Info("Relaying with mutual TLS between pods", "listen", tl.Addr().String(), "skynet", skynetAddr)
		}
		fwd := sender.New(src, opts...)
		defer fwd.Close()
		rl = relay.New(fwd, relay.WithWait(relayWait), relay.WithLogger(log.WithName("relay")),
			relay.WithRegisterer(reg))
		defer rl.Close()
		o.Relay = rl
	}
	a := New(src, client, o, reg)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen for probes and metrics: %w", err)
	}
	srv := &http.Server{Handler: Handler(a, reg), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "Probe and metrics server stopped")
		}
	}()
	log.Info("Pushing the namespace's cluster config to skynet", "namespace", ns, "node", o.Node, "skynet", skynetAddr,
		"service", o.Service, "listen", l.Addr().String())
	a.Run(ctx)
	if rl != nil {
		lctx, cancel := context.WithTimeout(context.Background(), relayLinger)
		log.Info("Relaying until skynet closes its connections", "open", rl.Conns(), "linger", relayLinger)
		rl.WaitIdle(lctx)
		cancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Handler serves /readyz (200 once skynet has the current config, 503 with
// the reason otherwise), /healthz and /metrics.
func Handler(a *Agent, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := a.Ready(); !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
