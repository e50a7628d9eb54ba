package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
)

// Source is where the agent reads the namespace's nodes:
// *kube.Registry.
type Source interface {
	Entries() ([]registry.Entry, bool, error)
	WatchAll(notify func()) (stop func())
}

// Options configure an Agent.
type Options struct {
	// Node is the local skynet node's cluster name (its ClusterNode's node
	// name): the Client confirms it when connecting.
	Node string
	// Service is the name the skycall Lua service registered ("@skycall").
	Service string
	// NoWait is pushed as __nowaiting: skynet callers of a name the config
	// lacks fail at once instead of waiting.
	NoWait bool
	// Interval is how often the agent asks skynet what it has, which bounds
	// how long a restarted skynet runs without its config.
	Interval time.Duration
	// CallTimeout bounds one status or push call.
	CallTimeout time.Duration
	// ReadyLag is how long skynet may be behind the registry (a change not
	// pushed yet) and the agent still report ready: a change elsewhere in
	// the namespace must not make every skynet pod unready for the moment
	// its push takes.
	ReadyLag time.Duration
	// Token proves the agent's calls are the pod's own: skynet refuses a
	// reload or status without it.
	Token *TokenFile
	// TokenRotate is how often a new token is written; 0 keeps the one
	// written at start for the agent's life.
	TokenRotate time.Duration
	// Relay, when set, stands in for every other node: the config pushed
	// points each of them at its relay address (relay mode).
	Relay Relay
	Log   logr.Logger
}

// Relay is the loopback relay of relay mode: *relay.Relay.
type Relay interface {
	// Address is node's relay address, the same for the relay's life.
	Address(node string) (string, error)
	// Addresses are every node's relay address given so far.
	Addresses() map[string]string
}

// Agent pushes the namespace's cluster config to one skynet node.
type Agent struct {
	src    Source
	client *sender.Client
	o      Options
	m      *agentMetrics
	kick   chan struct{}

	mu          sync.Mutex
	generation  int64     // of want; bumped when its hash changes
	hash        string    // of want
	changedAt   time.Time // when want last changed (or first loaded)
	applied     int64     // generation skynet has, 0 when it has none of ours
	appliedHash string
	incarnation string // of the skynet process last seen
	reachable   bool   // the last status or push call got an answer
	refused     string // why skynet refused the wanted config, "" if it did not
}

// New returns an Agent pushing what src says to the skynet node client
// reaches as o.Node. Register its metrics with reg (may be nil).
func New(src Source, client *sender.Client, o Options, reg prometheus.Registerer) *Agent {
	if o.Service == "" {
		o.Service = "@skycall"
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.ReadyLag <= 0 {
		o.ReadyLag = 10 * time.Second
	}
	a := &Agent{src: src, client: client, o: o, kick: make(chan struct{}, 1)}
	a.m = newAgentMetrics(a, reg)
	return a
}

// Run keeps skynet's config current until ctx ends: at once on every
// change the source reports (changes arriving during a push are coalesced
// into the next one), and every Interval, which catches a skynet restart.
func (a *Agent) Run(ctx context.Context) {
	stop := a.src.WatchAll(func() {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	})
	defer stop()
	tick := time.NewTicker(a.o.Interval)
	defer tick.Stop()
	var rotate <-chan time.Time
	if a.o.TokenRotate > 0 {
		rt := time.NewTicker(a.o.TokenRotate)
		defer rt.Stop()
		rotate = rt.C
	}
	for {
		a.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-tick.C:
		case <-rotate:
			if err := a.o.Token.Rotate(); err != nil {
				a.o.Log.Error(err, "Cannot write a new token; the old one stays in force")
			}
		}
	}
}

// Ready says whether skynet has the namespace's config (the one wanted, or
// one at most ReadyLag behind it) and answered the last call; why not, if
// not.
func (a *Agent) Ready() (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.generation == 0:
		return false, "the namespace's ClusterNodes are not loaded yet"
	case !a.reachable:
		return false, fmt.Sprintf("skynet node %s does not answer", a.o.Node)
	case a.refused != "":
		return false, fmt.Sprintf("skynet node %s refused config generation %d: %s", a.o.Node, a.generation, a.refused)
	case a.applied == 0:
		return false, fmt.Sprintf("skynet node %s has no config from this agent yet", a.o.Node)
	case a.appliedHash != a.hash && time.Since(a.changedAt) > a.o.ReadyLag:
		return false, fmt.Sprintf("skynet node %s is at config generation %d, %s behind generation %d",
			a.o.Node, a.applied, time.Since(a.changedAt).Round(time.Millisecond), a.generation)
	}
	return true, ""
}

// lag is how long the config skynet has has been behind the wanted one; 0
// when current.
func (a *Agent) lag() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.generation == 0 || a.appliedHash == a.hash {
		return 0
	}
	return time.Since(a.changedAt).Seconds()
}

// want builds the config to push from the source's entries: exactly the
// table the operator's clustername.lua makes (registry.ConfigTable), and
// its hash.
func (a *Agent) want() (config map[string]any, hash string, ok bool) {
	entries, synced, err := a.src.Entries()
	if err != nil {
		a.o.Log.Error(err, "Cannot read the namespace's ClusterNodes; skynet keeps the config it has")
	}
	if !synced {
		return nil, "", false
	}
	config, omitted := registry.ConfigTable(entries, a.o.NoWait)
	if a.o.Relay != nil {
		a.relayed(config, entries, omitted)
	}
	lines := make([]string, 0, len(config))
	for k, v := range config {
		lines = append(lines, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return config, hex.EncodeToString(sum[:12]), true
}

// relayed points every node but the local one at its relay address,
// whatever its state (ready, draining, down, not ready), and keeps every
// name relayed before: each name's address then stays the same for the
// pod's life, and skynet needs no reload for a move, a drain or a restart.
// The local node keeps its own line.
func (a *Agent) relayed(config map[string]any, entries, omitted []registry.Entry) {
	skip := map[string]bool{a.o.Node: true}
	for _, e := range omitted {
		skip[e.Node] = true
	}
	for _, e := range entries {
		if skip[e.Node] {
			continue
		}
		if _, err := a.o.Relay.Address(e.Node); err != nil {
			a.o.Log.Error(err, "Cannot relay a node; skynet gets its own address", "node", e.Node)
		}
	}
	for node, addr := range a.o.Relay.Addresses() {
		if node != a.o.Node {
			config[node] = addr
		}
	}
}

// sync makes skynet's config the wanted one, if it is not already.
func (a *Agent) sync(ctx context.Context) {
	config, hash, ok := a.want()
	if !ok {
		return
	}
	a.mu.Lock()
	if hash != a.hash {
		a.generation++
		a.hash = hash
		a.changedAt = time.Now()
		a.o.Log.V(1).Info("The namespace's cluster config changed", "generation", a.generation, "nodes", len(config)-1)
	}
	a.mu.Unlock()

	st, err := a.status(ctx)
	if err != nil {
		a.setReachable(false)
		a.o.Log.V(1).Info("skynet node does not answer; retrying", "node", a.o.Node, "error", err.Error())
		return
	}
	a.mu.Lock()
	// skynet refuses a generation below its own: an agent that restarted
	// (its count back at 1) goes on from the generation skynet has.
	switch {
	case st.hash == hash && st.generation > 0:
		a.generation = st.generation
	case st.generation >= a.generation:
		a.generation = st.generation + 1
	}
	gen := a.generation
	restarted := st.incarnation != a.incarnation
	if a.incarnation != "" && restarted {
		a.o.Log.Info("skynet node restarted; pushing the config again", "node", a.o.Node,
			"old", a.incarnation, "new", st.incarnation)
		a.m.restarts.Inc()
	}
	a.incarnation = st.incarnation
	a.reachable = true
	if st.hash == hash {
		// Already there (pushed before, or by the agent's previous life).
		a.applied, a.appliedHash, a.refused = gen, hash, ""
		a.mu.Unlock()
		return
	}
	if st.hash == "" || restarted {
		a.applied = 0 // a skynet with none of this agent's configs
	}
	a.appliedHash = st.hash
	a.mu.Unlock()

	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, a.o.CallTimeout)
	defer cancel()
	reply, err := a.client.CallValues(cctx, a.o.Node, a.o.Service, "reload", config,
		map[string]any{"generation": gen, "hash": hash, "token": a.o.Token.Token()})
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case err != nil:
		a.m.pushes.WithLabelValues("failed").Inc()
		a.reachable = false
		a.o.Log.Info("Pushing the cluster config to skynet failed; retrying", "node", a.o.Node, "generation", gen, "error", err.Error())
	case len(reply) >= 1 && reply[0] == true:
		a.m.pushes.WithLabelValues("applied").Inc()
		a.m.pushSeconds.Observe(time.Since(start).Seconds())
		a.applied, a.appliedHash, a.refused = gen, hash, ""
		a.o.Log.Info("skynet applied the cluster config", "node", a.o.Node, "generation", gen,
			"nodes", len(config)-1, "lagSeconds", time.Since(a.changedAt).Seconds())
	default:
		a.m.pushes.WithLabelValues("refused").Inc()
		why := fmt.Sprint(reply...)
		if len(reply) >= 2 {
			why = fmt.Sprint(reply[1])
		}
		if why != a.refused {
			a.o.Log.Error(nil, "skynet refused the cluster config; it keeps the previous one", "node", a.o.Node,
				"generation", gen, "reason", why)
		}
		a.refused = why
	}
}

func (a *Agent) setReachable(ok bool) {
	a.mu.Lock()
	a.reachable = ok
	a.mu.Unlock()
}

type skynetStatus struct {
	incarnation, hash string
	generation        int64
}

// status asks the Lua service what it has.
func (a *Agent) status(ctx context.Context) (skynetStatus, error) {
	cctx, cancel := context.WithTimeout(ctx, a.o.CallTimeout)
	defer cancel()
	reply, err := a.client.CallValues(cctx, a.o.Node, a.o.Service, "status", map[string]any{"token": a.o.Token.Token()})
	if err != nil {
		return skynetStatus{}, err
	}
	var m map[any]any
	if len(reply) > 0 {
		m, _ = reply[0].(map[any]any)
	}
	if len(reply) == 2 && reply[0] == false {
		return skynetStatus{}, fmt.Errorf("skynet node %s refused the agent's status call: %v (does skynet's skycall_token_file name the file the agent writes, on a volume both containers mount?)",
			a.o.Node, reply[1])
	}
	if m == nil {
		return skynetStatus{}, fmt.Errorf("skynet node %s: %s answered status with %v, not a table: is it skycall's Lua service?",
			a.o.Node, a.o.Service, reply)
	}
	str := func(k string) string {
		switch v := m[k].(type) {
		case string:
			return v
		case []byte:
			return string(v)
		}
		return ""
	}
	gen, _ := m["generation"].(int64)
	return skynetStatus{incarnation: str("incarnation"), hash: str("hash"), generation: gen}, nil
}

type agentMetrics struct {
	pushes      *prometheus.CounterVec
	restarts    prometheus.Counter
	pushSeconds prometheus.Histogram
}

func newAgentMetrics(a *Agent, reg prometheus.Registerer) *agentMetrics {
	m := &agentMetrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skycall_agent_pushes_total",
			Help: "Cluster configs pushed to the local skynet node, by result: applied, refused (skynet found it invalid) or failed (no answer).",
		}, []string{"result"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skycall_agent_skynet_restarts_total",
			Help: "Times the local skynet node answered with a new incarnation (a restarted process), each followed by a push.",
		}),
		pushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skycall_agent_push_duration_seconds",
			Help:    "Time a push took, from the call to skynet's answer that it applied the config.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for _, r := range []string{"applied", "refused", "failed"} {
		m.pushes.WithLabelValues(r)
	}
	if reg == nil {
		return m
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.pushes, m.restarts, m.pushSeconds,
		gauge("skycall_agent_config_generation", "Generation of the namespace's cluster config the agent wants skynet to have (bumped on every change).",
			func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(a.generation) }),
		gauge("skycall_agent_config_generation_applied", "Generation skynet has applied; 0 while it has none of this agent's.",
			func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(a.applied) }),
		gauge("skycall_agent_config_lag_seconds", "How long skynet's config has been behind the namespace's ClusterNodes; 0 when current.",
			a.lag),
		gauge("skycall_agent_ready", "1 when skynet has the current config (see /readyz), else 0.",
			func() float64 {
				if ok, _ := a.Ready(); ok {
					return 1
				}
				return 0
			}),
	)
	return m
}
