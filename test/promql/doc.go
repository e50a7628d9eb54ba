// Package promql checks that every PromQL expression the chart ships (the
// PrometheusRule's alerts and the Grafana dashboard's panels) parses with
// Prometheus's own parser, so that a typo cannot leave an alert that never
// fires or a panel that never draws. It is a module of its own because
// github.com/prometheus/prometheus brings a large dependency graph that the
// operator and the sender must not inherit; `make verify` runs it.
package promql
