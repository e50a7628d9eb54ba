// Command manager runs the skycall operator: it reconciles ClusterNodeSets
// into one ClusterNode per pod, ClusterNodes into their status, and both
// into the per-namespace skycall-registry ConfigMaps.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/controllers"
	"github.com/skycall-io/skycall/internal/apiwait"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		if err := check(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "check failed:", err)
			os.Exit(1)
		}
		return
	}
	var (
		metricsAddr, probeAddr, namespaces, leaderNamespace string
		metricsCertPath                                     string
		leaderElect, metricsSecure, enableHTTP2             bool
		qps                                                 float64
		burst, workers                                      int
		lease                                               leaseFlags
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS, only to clients whose token the API server authenticates (TokenReview) and allows "+
			"to get /metrics (SubjectAccessReview). false serves plain HTTP to anyone who can reach the port.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "",
		"Directory holding tls.crt and tls.key for the metrics endpoint (for example a cert-manager Secret); empty means a self-signed certificate.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"Serve metrics over HTTP/2 too; off by default because of the HTTP/2 Rapid Reset and Stream Cancellation vulnerabilities (CVE-2023-44487, CVE-2023-39325).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles; required when running more than one replica.")
	flag.StringVar(&leaderNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	flag.DurationVar(&lease.duration, "leader-elect-lease-duration", 15*time.Second,
		"How long a replica waits after the leader's last renewal before taking over when the leader died without "+
			"releasing the Lease (a leader that stops cleanly releases it at once).")
	flag.DurationVar(&lease.renewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"How long the leader keeps retrying to renew before it gives up leadership and exits; must be less than the lease duration.")
	flag.DurationVar(&lease.retryPeriod, "leader-elect-retry-period", 2*time.Second,
		"How often replicas try to acquire or renew the Lease; must be less than the renew deadline.")
	flag.Float64Var(&qps, "kube-api-qps", 400, "Requests per second the manager may send to the API server (status and registry writes).")
	flag.IntVar(&burst, "kube-api-burst", 800, "Burst of requests above --kube-api-qps.")
	flag.IntVar(&workers, "workers", 4, "ClusterNodes (and, separately, ClusterNodeSets) reconciled at once.")
	flag.StringVar(&namespaces, "namespaces", "", "Comma-separated namespaces to watch (default: all).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := lease.validate(); err != nil {
		log.Error(err, "Invalid leader election flags")
		os.Exit(2)
	}
	metrics := metricsOptions(metricsAddr, metricsSecure, enableHTTP2)
	metrics.CertDir = metricsCertPath
	if err := run(metrics, probeAddr, leaderNamespace, leaderElect, lease, splitList(namespaces), float32(qps), burst, workers); err != nil {
		log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

// leaseFlags time leader election. client-go's defaults (15 s, 10 s, 2 s)
// are the defaults here too: a shorter lease fails over faster after a
// crash but makes a leader give up during a shorter API server outage.
type leaseFlags struct {
	duration, renewDeadline, retryPeriod time.Duration
}

// validate applies client-go's own rules, which would otherwise panic later
// inside the manager.
func (l leaseFlags) validate() error {
	switch {
	case l.retryPeriod <= 0:
		return fmt.Errorf("--leader-elect-retry-period %v must be positive", l.retryPeriod)
	case l.renewDeadline <= time.Duration(leaderelection.JitterFactor*float64(l.retryPeriod)):
		return fmt.Errorf("--leader-elect-renew-deadline %v must be more than %.1f times --leader-elect-retry-period %v",
			l.renewDeadline, leaderelection.JitterFactor, l.retryPeriod)
	case l.duration <= l.renewDeadline:
		return fmt.Errorf("--leader-elect-lease-duration %v must be more than --leader-elect-renew-deadline %v", l.duration, l.renewDeadline)
	}
	return nil
}

// metricsOptions serves metrics the way kubebuilder v4 and cert-manager do:
// HTTPS (a self-signed certificate, as Prometheus scrapes pods by IP) with
// authentication and authorization delegated to the API server, so that
// only a ServiceAccount bound to the metrics-reader ClusterRole reads them.
func metricsOptions(addr string, secure, http2 bool) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: addr, SecureServing: secure}
	if !secure {
		return opts
	}
	opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	if !http2 {
		opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return opts
}

func run(metrics metricsserver.Options, probeAddr, leaderNamespace string, leaderElect bool, lease leaseFlags, namespaces []string, qps float32, burst, workers int) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(skycallv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes config (in-cluster or kubeconfig): %w", err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	ctx := ctrl.SetupSignalHandler()
	cacheOpts, err := controllers.CacheOptions(cfg, namespaces)
	if err != nil {
		return fmt.Errorf("cache options: %w", err)
	}
	mgr, err := newManager(ctx, cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metrics,
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "skycall-manager.cluster.skycall.io",
		LeaderElectionNamespace: leaderNamespace,
		LeaseDuration:           &lease.duration,
		RenewDeadline:           &lease.renewDeadline,
		RetryPeriod:             &lease.retryPeriod,
		// A leader that is stopped (rolling update, drain) hands the Lease
		// over at once instead of making the next leader wait a whole
		// lease duration. Safe because main exits as soon as Start returns.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOpts,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.Setup(mgr, controllers.Options{Workers: workers}); err != nil {
		return fmt.Errorf("set up controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "metrics", metrics.BindAddress, "metricsSecure", metrics.SecureServing, "namespaces", namespaces, "leaderElection", leaderElect,
		"leaseDuration", lease.duration, "renewDeadline", lease.renewDeadline, "retryPeriod", lease.retryPeriod)
	return mgr.Start(ctx)
}

// newManager creates the manager, waiting for the API server when it is
// unreachable: creating the manager reads the API's discovery, and a
// manager that exited whenever it started during an API server outage would
// be restarted by the kubelet with a crash-loop backoff of up to 5 minutes.
func newManager(ctx context.Context, cfg *rest.Config, opts ctrl.Options) (ctrl.Manager, error) {
	for {
		mgr, err := ctrl.NewManager(cfg, opts)
		if err == nil || !apiwait.Transient(err) {
			return mgr, err
		}
		ctrl.Log.WithName("setup").Info("API server unreachable; retrying", "every", controllers.APIServerRetry, "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(controllers.APIServerRetry):
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
