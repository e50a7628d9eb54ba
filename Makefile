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
verify: ## Fail if generated files are stale; gofmt, go vet and staticcheck.
	hack/generate.sh --verify
	$(GO) run ./hack/chart-values-doc --verify
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on: $$out" >&2; exit 1; fi
	$(GO) vet ./...
	@echo "== go vet and the unit tests in bench/ (its own module: its go.mod must follow the root's)"
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./cmd/...
	@echo "== the chart's alert and dashboard PromQL, parsed by Prometheus's parser (test/promql, its own module)"
	cd test/promql && $(GO) vet ./... && SKYCALL_TOOLS="$(TOOLS)" $(GO) test -count=1 ./...
	"$(TOOLS)/staticcheck" ./...

.PHONY: chart-docs
chart-docs: ## Regenerate the values reference in charts/skycall/README.md from values.yaml's comments.
	$(GO) run ./hack/chart-values-doc

.PHONY: staticcheck
staticcheck: ## staticcheck (built once into the tools cache by hack/control-plane.sh).
	"$(TOOLS)/staticcheck" ./...

.PHONY: build
build: ## Build the manager, demo, skycall and skycall-agent binaries into bin/.
	$(GO) build -o bin/manager ./cmd/manager
	$(GO) build -o bin/skycall-demo ./cmd/skycall-demo
	$(GO) build -o bin/skycall ./cmd/skycall
	$(GO) build -o bin/skycall-agent ./cmd/skycall-agent

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
test: verify skynet ## Everything CI runs: generated files, vet, unit, race, envtest, fuzz seeds, e2e, interop with a real skynet, the real cluster (root).
	@if [ "$$(uname -s)" = Linux ] && [ "$$(id -u)" = 0 ]; then \
	  echo "== cluster tools (test/cluster runs a real one-node cluster)"; hack/cluster-tools.sh >/dev/null; \
	else echo "== test/cluster (the real cluster) will be skipped: it needs root on Linux"; fi
	@echo "== go test (real kube-apiserver and etcd from $(TOOLS))"
	KUBEBUILDER_ASSETS="$(TOOLS)" SKYCALL_TOOLS="$(TOOLS)" $(GO) test -count=1 -timeout 30m ./...
	@echo "== go test -race ./sender/... ./internal/relay/"
	KUBEBUILDER_ASSETS="$(TOOLS)" $(GO) test -race -count=1 -timeout 20m ./sender/... ./internal/relay/
	@echo "== fuzz (each target $(FUZZTIME))"
	hack/fuzz.sh $(FUZZTIME)
	@hack/skynet.sh >/dev/null 2>&1 || echo "== NOTE: the interop tests against a real skynet (test/interop) were SKIPPED: see 'make skynet'"

.PHONY: skynet
skynet: ## Build (once) the real skynet the interop tests run, or say why they will be skipped and how to enable them.
	@echo "== skynet for the interop tests (test/interop)"
	@if dir=$$(hack/skynet.sh | tail -n 1); then echo "   real skynet nodes from $$dir"; \
	  else rc=$$?; \
	    if [ $$rc -ne 3 ] || [ "$${CI:-}" = true ] || [ "$${SKYCALL_REQUIRE_SKYNET:-}" = 1 ]; then exit $$rc; fi; \
	    echo "   SKIPPING the interop tests: no skynet source and no network (reason above)."; \
	    echo "   Enable them: SKYNET_SRC=/path/to/skynet-f19d1605.tar.gz make test (or a checkout of"; \
	    echo "   github.com/cloudwu/skynet at f19d1605), or run where GitHub is reachable; needs gcc and make."; \
	  fi

BENCHFLAGS ?=

.PHONY: bench
bench: ## Benchmarks: skycall against gRPC-Go, Proto.Actor and plain TCP (bench/), go test -bench on the hot paths, the operator with 10,000 ClusterNodes and a ClusterNodeSet of 1,000 pods. BENCHFLAGS=-quick for a smoke run.
	cd bench && $(GO) run ./cmd/skybench $(BENCHFLAGS)
	@echo "== skynet rows: skynet -> skynet (1.0x) against skynet -> relay -> skynet, skycall Client -> skynet, skynet -> skycall Server, skycall -> skycall; then a relay's idle memory with 1,000 names"
	cd bench && $(GO) run ./cmd/skynetbench $(if $(findstring -quick,$(BENCHFLAGS)),-quick) $(SKYNETBENCHFLAGS)
	cd bench && $(GO) test -run '^$$' -bench . -benchmem .
	$(GO) test -run '^$$' -bench . -benchmem ./sender/...
	@echo "== operator at scale: $${SKYCALL_SCALE_NODES:-10000} ClusterNodes on the local control plane"
	SKYCALL_TOOLS="$(TOOLS)" $(GO) test -run '^$$' -bench OperatorScale -benchtime=1x -timeout 20m -v ./test/scale/
	@echo "== ClusterNodeSet at scale: one set over $${SKYCALL_SCALE_PODS:-1000} pods' endpoints, then one pod drained and replaced"
	SKYCALL_TOOLS="$(TOOLS)" $(GO) test -run '^$$' -bench ClusterNodeSetScale -benchtime=1x -timeout 20m -v ./test/scale/

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "%-12s %s\n", $$1, $$2}'
