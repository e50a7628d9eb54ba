// Command manager runs the skycall operator: it reconciles ClusterNodes into
// their status and the per-namespace skycall-registry ConfigMaps.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/controllers"
)

func main() {
	var (
		metricsAddr, probeAddr, namespaces, leaderNamespace string
		leaderElect                                         bool
		qps                                                 float64
		burst, workers                                      int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles; required when running more than one replica.")
	flag.StringVar(&leaderNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	flag.Float64Var(&qps, "kube-api-qps", 400, "Requests per second the manager may send to the API server (status and registry writes).")
	flag.IntVar(&burst, "kube-api-burst", 800, "Burst of requests above --kube-api-qps.")
	flag.IntVar(&workers, "workers", 4, "ClusterNodes (and, separately, ClusterNodeSets) reconciled at once.")
	flag.StringVar(&namespaces, "namespaces", "", "Comma-separated namespaces to watch (default: all).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := run(metricsAddr, probeAddr, leaderNamespace, leaderElect, splitList(namespaces), float32(qps), burst, workers); err != nil {
		log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

func run(metricsAddr, probeAddr, leaderNamespace string, leaderElect bool, namespaces []string, qps float32, burst, workers int) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(skycallv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes config (in-cluster or kubeconfig): %w", err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "skycall-manager.cluster.skycall.io",
		LeaderElectionNamespace: leaderNamespace,
		Cache:                   controllers.CacheOptions(namespaces),
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
	ctrl.Log.WithName("setup").Info("Starting manager", "namespaces", namespaces, "leaderElection", leaderElect)
	return mgr.Start(ctrl.SetupSignalHandler())
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
