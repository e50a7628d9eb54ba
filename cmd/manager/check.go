package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/transport"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// checkMetric is a series the manager always serves (a histogram without
// labels), so its presence shows the skycall controllers, not just any
// HTTP server, answered.
const checkMetric = "skycall_operator_endpointslice_to_registry_seconds"

// check is `manager check`, what the chart's `helm test` pod runs with the
// manager image (which has nothing else to run): the CRD is established and
// the manager serves its metrics to an authorized ServiceAccount.
func check(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	crd := fs.String("crd", "clusternodes.cluster.skycall.io", "CustomResourceDefinition that must be Established.")
	url := fs.String("metrics-url", "", "Metrics URL to scrape with this pod's ServiceAccount token, e.g. https://skycall-manager-metrics.skycall-system:8443/metrics.")
	service := fs.String("metrics-service", "", "NAMESPACE/NAME of the metrics Service, scraped at a ready endpoint's port named metrics "+
		"(as Prometheus does; no cluster DNS needed); used when --metrics-url is empty.")
	scheme := fs.String("metrics-scheme", "https", "Scheme of --metrics-service: https, or http with --metrics-secure=false.")
	timeout := fs.Duration("timeout", 2*time.Minute, "How long to keep trying before failing.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes config (in-cluster or kubeconfig): %w", err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := retry(ctx, func() error { return crdEstablished(ctx, c, *crd) }); err != nil {
		return err
	}
	fmt.Printf("CRD %s is established\n", *crd)
	if *url == "" && *service != "" {
		if err := retry(ctx, func() (err error) { *url, err = serviceURL(ctx, c, *service, *scheme); return err }); err != nil {
			return err
		}
	}
	if *url == "" {
		return nil
	}
	token := cfg.BearerToken
	if token == "" && cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("read the ServiceAccount token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	// The manager's certificate is self-signed; what is checked here is
	// that it serves, and serves this token.
	rt := transport.NewBearerAuthRoundTripper(token, &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}})
	hc := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	if err := retry(ctx, func() error { return scrape(ctx, hc, *url) }); err != nil {
		return err
	}
	fmt.Printf("%s serves %s\n", *url, checkMetric)
	return nil
}

// serviceURL is the metrics URL of a ready endpoint of the Service
// ns/name, from its EndpointSlices: Prometheus scrapes pods this way too
// (not through the cluster IP), and it needs no cluster DNS.
func serviceURL(ctx context.Context, c client.Client, nsName, scheme string) (string, error) {
	ns, name, ok := strings.Cut(nsName, "/")
	if !ok || ns == "" || name == "" {
		return "", fmt.Errorf("--metrics-service %q: want NAMESPACE/NAME", nsName)
	}
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
		return "", fmt.Errorf("list the EndpointSlices of the metrics Service %s: %w", nsName, err)
	}
	for _, es := range slices.Items {
		for _, p := range es.Ports {
			if p.Name == nil || *p.Name != "metrics" || p.Port == nil {
				continue
			}
			for _, ep := range es.Endpoints {
				if (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && len(ep.Addresses) > 0 {
					return fmt.Sprintf("%s://%s/metrics", scheme, net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(*p.Port)))), nil
				}
			}
		}
	}
	return "", fmt.Errorf("the metrics Service %s has no ready endpoint yet", nsName)
}

func crdEstablished(ctx context.Context, c client.Client, name string) error {
	var crd unstructured.Unstructured
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &crd); err != nil {
		return fmt.Errorf("get CRD %s: %w", name, err)
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, co := range conds {
		m, _ := co.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return nil
		}
	}
	return fmt.Errorf("CRD %s is not Established yet", name)
}

func scrape(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape %s: %s (is this ServiceAccount bound to the metrics-reader ClusterRole?)", url, resp.Status)
	}
	if !strings.Contains(string(body), checkMetric) {
		return fmt.Errorf("scrape %s: no %s in the response; is it the skycall manager?", url, checkMetric)
	}
	return nil
}

// retry calls f until it succeeds or ctx ends, returning f's last error.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}
