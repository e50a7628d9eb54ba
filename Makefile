# skycall: see README.md. Every target sets up what it needs on a fresh
# machine with only Go: hack/control-plane.sh builds kube-apiserver, etcd,
# kubectl, controller-gen and helm from Go modules into ~/.cache/skycall once.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
TOOLS = $(shell hack/control-plane.sh | tail -n 1)
FUZZTIME ?= 10s

.PHONY: all
all: build

.PHONY: tools
tools: ## Build (once) and print the local control plane and tool directory.
	@hack/control-plane.sh

.PHONY: generate
generate: ## Regenerate deepcopy code.
	hack/generate.sh

.PHONY: manifests
manifests: generate ## Regenerate the CRD, RBAC and the chart's CRD copy.

.PHONY: verify
verify: ## Fail if generated files are stale; gofmt and go vet.
	hack/generate.sh --verify
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on: $$out" >&2; exit 1; fi
	$(GO) vet ./...

.PHONY: build
build: ## Build the manager and demo binaries into bin/.
	$(GO) build -o bin/manager ./cmd/manager
	$(GO) build -o bin/skycall-demo ./cmd/skycall-demo

.PHONY: demo
demo: build ## The main job: control plane, operator, two nodes and a sender, end to end.
	@SKYCALL_TOOLS="$(TOOLS)" bin/skycall-demo run --manager bin/manager

.PHONY: demo-cluster
demo-cluster: build ## The demo on a real one-node cluster: pods, pod IPs, a node pod replaced midway (root, Linux).
	@bin/skycall-demo cluster

.PHONY: cluster-tools
cluster-tools: ## Build (once) kubelet, containerd and the rest of the local cluster; install its Debian packages.
	@hack/cluster-tools.sh

.PHONY: test
test: verify ## Everything CI runs: generated files, vet, unit, race, envtest, fuzz seeds, e2e, the real cluster (root).
	@if [ "$$(uname -s)" = Linux ] && [ "$$(id -u)" = 0 ]; then \
	  echo "== cluster tools (test/cluster runs a real one-node cluster)"; hack/cluster-tools.sh >/dev/null; \
	else echo "== test/cluster (the real cluster) will be skipped: it needs root on Linux"; fi
	@echo "== go test (real kube-apiserver and etcd from $(TOOLS))"
	KUBEBUILDER_ASSETS="$(TOOLS)" SKYCALL_TOOLS="$(TOOLS)" $(GO) test -count=1 -timeout 30m ./...
	@echo "== go test -race ./sender/..."
	KUBEBUILDER_ASSETS="$(TOOLS)" $(GO) test -race -count=1 -timeout 20m ./sender/...
	@echo "== fuzz (each target $(FUZZTIME))"
	hack/fuzz.sh $(FUZZTIME)

BENCHFLAGS ?=

.PHONY: bench
bench: ## Benchmarks: skycall against gRPC-Go, Proto.Actor and plain TCP (bench/), go test -bench on the hot paths, the operator with 10,000 ClusterNodes. BENCHFLAGS=-quick for a smoke run.
	cd bench && $(GO) run ./cmd/skybench $(BENCHFLAGS)
	cd bench && $(GO) test -run '^$$' -bench . -benchmem .
	$(GO) test -run '^$$' -bench . -benchmem ./sender/...
	@echo "== operator at scale: $${SKYCALL_SCALE_NODES:-10000} ClusterNodes on the local control plane"
	SKYCALL_TOOLS="$(TOOLS)" $(GO) test -run '^$$' -bench OperatorScale -benchtime=1x -timeout 20m -v ./test/scale/

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "%-12s %s\n", $$1, $$2}'
