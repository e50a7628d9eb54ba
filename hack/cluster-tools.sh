#!/usr/bin/env bash
# Builds what a real one-node cluster needs on top of hack/control-plane.sh
# (etcd, kube-apiserver, kubectl, helm), once, from Go modules, into the same
# cache directory, and installs the Debian packages it needs when missing:
#
#   kubelet, kube-controller-manager,   from k8s.io/kubernetes (the same module
#   kube-scheduler, kube-proxy          recipe as kube-apiserver)
#   containerd, containerd-shim-runc-v2, from github.com/containerd/containerd/v2
#   ctr                                 (CGO_ENABLED=0; kubelet 1.37 needs 2.x,
#                                       Debian's containerd is 1.x)
#   kube-router                         from github.com/cloudnativelabs/kube-router/v2
#                                       (its network policy controller only: the
#                                       cluster's NetworkPolicy enforcer)
#   runc, containernetworking-plugins,  Debian packages
#   iproute2, nftables, iptables, ipset,
#   openssl, ca-certificates
#
# Usage: hack/cluster-tools.sh [--check]
#   Builds or installs whatever is missing, then prints the directory holding
#   every binary (the same one hack/control-plane.sh prints) as the last line.
#   --check: build nothing; exit 1 naming what is missing, else print the
#   directory.
#
# Each binary is built only when missing: the Kubernetes ones live in a
# directory named after their version, containerd's and kube-router's carry a
# version stamp (containerd.version, kube-router.version) so changing
# CONTAINERD_VERSION or KUBE_ROUTER_VERSION rebuilds them.
#
# Environment: SKYCALL_CACHE_DIR (as in control-plane.sh), CONTAINERD_VERSION
# (default v2.4.2), KUBE_ROUTER_VERSION (default v2.1.0), SKYCALL_NO_APT=1 to
# report missing packages instead of installing them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/kubernetes-module.sh
. "$root/hack/lib/kubernetes-module.sh"
log() { printf '[cluster-tools] %s\n' "$*" >&2; }

# The same version and directory rule as control-plane.sh.
api_version=$(awk '$1 == "k8s.io/api" { print $2; exit }' "$root/go.mod" 2>/dev/null || true)
api_version=${api_version:-v0.37.2}
k8s_version="v1.${api_version#v0.}"
containerd_version=${CONTAINERD_VERSION:-v2.4.2}
# The one kube-router the Go module proxy here serves. Its network policy
# controller alone runs (hack/cluster.sh); see docs/reliability.md for why not
# kube-network-policies (its nft queue needs a kernel module this kernel lacks).
kube_router_version=${KUBE_ROUTER_VERSION:-v2.1.0}
cache_root=${SKYCALL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/skycall}
bin="$cache_root/k8s-${k8s_version}"
work="$cache_root/build"
mkdir -p "$bin" "$work"

# --- Debian packages --------------------------------------------------------
# path -> package; the path proves the package is there.
declare -A packages=(
  [/usr/sbin/runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [/usr/lib/cni/host-local]=containernetworking-plugins
  [/usr/sbin/ip]=iproute2
  [/usr/sbin/nft]=nftables
  [/usr/sbin/iptables]=iptables
  [/usr/sbin/ipset]=ipset
  [/usr/bin/openssl]=openssl
  [/etc/ssl/certs/ca-certificates.crt]=ca-certificates
  [/usr/bin/flock]=util-linux
)

missing_kube_router() {
  [ -x "$bin/kube-router" ] && [ "$(cat "$bin/kube-router.version" 2>/dev/null)" = "$kube_router_version" ] || echo kube-router
}

if [ "${1:-}" = --check ]; then
  absent=()
  for c in etcd kube-apiserver kubectl helm kubelet kube-controller-manager kube-scheduler kube-proxy; do
    [ -x "$bin/$c" ] || absent+=("$bin/$c")
  done
  for c in containerd containerd-shim-runc-v2 ctr; do
    [ -x "$bin/$c" ] && [ "$(cat "$bin/$c.version" 2>/dev/null)" = "$containerd_version" ] || absent+=("$bin/$c ($containerd_version)")
  done
  [ -n "$(missing_kube_router)" ] && absent+=("$bin/kube-router ($kube_router_version)")
  for p in "${!packages[@]}"; do
    [ -e "$p" ] || absent+=("$p (Debian package ${packages[$p]})")
  done
  if [ ${#absent[@]} -gt 0 ]; then
    echo "missing: ${absent[*]} (hack/cluster-tools.sh builds and installs them)"
    exit 1
  fi
  echo "$bin"
  exit 0
fi

missing=()
for path in "${!packages[@]}"; do
  [ -e "$path" ] || missing+=("${packages[$path]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "${SKYCALL_NO_APT:-}" = 1 ] || ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${missing[*]} (install them: apt-get install ${missing[*]})"
    exit 1
  fi
  log "installing missing Debian packages: ${missing[*]}"
  exec 8>"$cache_root/.apt-lock"
  flock 8
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$cache_root/apt.log" 2>&1; then
    tail -n 20 "$cache_root/apt.log" >&2
    log "apt-get install ${missing[*]} failed (log: $cache_root/apt.log)"
    exit 1
  fi
  exec 8>&-
  log "installed: ${missing[*]}"
fi

# --- Go builds ----------------------------------------------------------------
k8s_cmds=(kubelet kube-controller-manager kube-scheduler kube-proxy)
containerd_cmds=(containerd containerd-shim-runc-v2 ctr)
missing_k8s() { local c; for c in "${k8s_cmds[@]}"; do [ -x "$bin/$c" ] || echo "$c"; done; }
missing_containerd() {
  local c
  for c in "${containerd_cmds[@]}"; do
    [ -x "$bin/$c" ] && [ "$(cat "$bin/$c.version" 2>/dev/null)" = "$containerd_version" ] || echo "$c"
  done
}

export GOFLAGS=-mod=mod
export CGO_ENABLED=0
k8s_dir="$work/kubernetes-node-${k8s_version}"
containerd_dir="$work/containerd-${containerd_version}"
kube_router_dir="$work/kube-router-${kube_router_version}"

# Module resolution only downloads: it runs before the build lock, while
# another build may still be compiling.
prepare_kubernetes_node() {
  # A module of its own beside control-plane.sh's, so neither rewrites the
  # other's go.mod; the Go build cache shares the packages both compile.
  mkdir -p "$k8s_dir"
  [ -f "$k8s_dir/.prepared" ] && return 0
  log "resolving k8s.io/kubernetes ${k8s_version} node components (downloads modules)"
  kubernetes_module "$k8s_dir" skycall.local/kubernetes-node-tools "$k8s_version" "$api_version" "${k8s_cmds[@]}" ||
    { log "cannot download k8s.io/kubernetes@${k8s_version}"; exit 1; }
  # -e: kubernetes' test-only imports need modules it does not list.
  (cd "$k8s_dir" && go mod tidy -e >"$k8s_dir/tidy.log" 2>&1 || true)
  (cd "$k8s_dir" && go mod download >>"$k8s_dir/tidy.log" 2>&1 || true)
  touch "$k8s_dir/.prepared"
}

prepare_containerd() {
  mkdir -p "$containerd_dir"
  [ -f "$containerd_dir/.prepared" ] && return 0
  log "resolving github.com/containerd/containerd/v2 ${containerd_version} (downloads modules)"
  [ -f "$containerd_dir/go.mod" ] || (cd "$containerd_dir" && go mod init skycall.local/containerd-tools >/dev/null 2>&1)
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "github.com/containerd/containerd/v2/cmd/containerd"\n\t_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"\n\t_ "github.com/containerd/containerd/v2/cmd/ctr"\n)\n' >"$containerd_dir/tools.go"
  if ! (cd "$containerd_dir" && go get "github.com/containerd/containerd/v2@${containerd_version}" && go mod tidy) >"$containerd_dir/tidy.log" 2>&1; then
    tail -n 20 "$containerd_dir/tidy.log" >&2
    log "cannot resolve github.com/containerd/containerd/v2@${containerd_version}"
    exit 1
  fi
  touch "$containerd_dir/.prepared"
}

prepare_kube_router() {
  mkdir -p "$kube_router_dir"
  [ -f "$kube_router_dir/.prepared" ] && return 0
  log "resolving github.com/cloudnativelabs/kube-router/v2 ${kube_router_version} (downloads modules)"
  local gomod
  gomod=$(cd "$kube_router_dir" && GOFLAGS= go mod download -json "github.com/cloudnativelabs/kube-router/v2@${kube_router_version}" |
    awk -F'"' '/"GoMod":/ { print $4 }')
  [ -n "$gomod" ] || { log "cannot download github.com/cloudnativelabs/kube-router/v2@${kube_router_version}"; exit 1; }
  # kube-router's own requirements, as its release was built: `go mod tidy`
  # here would raise some to today's (packages only other platforms import).
  {
    echo "module skycall.local/kube-router-tools"
    echo
    awk '$1 == "go" { print; exit }' "$gomod"
    echo
    echo "require github.com/cloudnativelabs/kube-router/v2 ${kube_router_version}"
    echo
    awk '/^require \(/ { inside = 1; next } inside && /^\)/ { inside = 0; next } inside' "$gomod" |
      awk 'NF >= 2 { printf "require %s %s\n", $1, $2 }'
  } >"$kube_router_dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"\n' >"$kube_router_dir/tools.go"
  if ! (cd "$kube_router_dir" && go mod download && go list -deps github.com/cloudnativelabs/kube-router/v2/cmd/kube-router >/dev/null) >"$kube_router_dir/tidy.log" 2>&1; then
    tail -n 20 "$kube_router_dir/tidy.log" >&2
    log "cannot resolve github.com/cloudnativelabs/kube-router/v2@${kube_router_version}"
    exit 1
  fi
  touch "$kube_router_dir/.prepared"
}

build_kubernetes_node() { # commands...
  local pkg="k8s.io/component-base/version"
  local minor=${k8s_version#v1.}; minor=${minor%%.*}
  local ldflags="-s -w -X ${pkg}.gitVersion=${k8s_version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean -X ${pkg}/version.gitVersion=${k8s_version}"
  local c start
  for c in "$@"; do
    start=$(date +%s)
    log "building $c ${k8s_version} (first time only: up to several minutes)"
    (cd "$k8s_dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c")
    mv "$bin/$c.tmp" "$bin/$c"
    log "$c built in $(($(date +%s) - start)) s"
  done
}

build_containerd() { # commands...
  local pkg="github.com/containerd/containerd/v2/version"
  local ldflags="-s -w -X ${pkg}.Version=${containerd_version} -X ${pkg}.Package=github.com/containerd/containerd/v2"
  local c tags start
  for c in "$@"; do
    tags=urfave_cli_no_docs
    # The shim's own recipe: no gRPC server inside it.
    [ "$c" = containerd-shim-runc-v2 ] && tags="urfave_cli_no_docs no_grpc"
    start=$(date +%s)
    log "building $c ${containerd_version} (first time only: up to several minutes)"
    (cd "$containerd_dir" && go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$bin/$c.tmp" "github.com/containerd/containerd/v2/cmd/$c")
    mv "$bin/$c.tmp" "$bin/$c"
    echo "$containerd_version" >"$bin/$c.version"
    log "$c built in $(($(date +%s) - start)) s"
  done
}

build_kube_router() {
  local pkg="github.com/cloudnativelabs/kube-router/v2/pkg/version"
  local start
  start=$(date +%s)
  log "building kube-router ${kube_router_version} (first time only: a few minutes)"
  (cd "$kube_router_dir" && go build -trimpath -ldflags "-s -w -X ${pkg}.Version=${kube_router_version} -X ${pkg}.BuildDate=$(date -u +%F)" \
    -o "$bin/kube-router.tmp" "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router")
  mv "$bin/kube-router.tmp" "$bin/kube-router"
  echo "$kube_router_version" >"$bin/kube-router.version"
  log "kube-router built in $(($(date +%s) - start)) s"
}

if [ -n "$(missing_k8s)$(missing_containerd)$(missing_kube_router)" ]; then
  [ -z "$(missing_k8s)" ] || prepare_kubernetes_node
  [ -z "$(missing_containerd)" ] || prepare_containerd
  [ -z "$(missing_kube_router)" ] || prepare_kube_router
fi

# etcd, kube-apiserver, kubectl, helm. control-plane.sh takes the cache lock
# itself, so it runs before we take ours (a second flock on the same file from
# this process would wait for ourselves).
"$root/hack/control-plane.sh" >/dev/null

if [ -n "$(missing_k8s)$(missing_containerd)$(missing_kube_router)" ]; then
  # One heavy build at a time on the machine: the same lock as control-plane.sh.
  exec 9>"$cache_root/.lock"
  if ! flock -n 9; then
    log "waiting for another build holding $cache_root/.lock"
    flock 9
  fi
  # Whoever held the lock may have built some of them meanwhile.
  mapfile -t todo < <(missing_k8s)
  [ ${#todo[@]} -eq 0 ] || build_kubernetes_node "${todo[@]}"
  mapfile -t todo < <(missing_containerd)
  [ ${#todo[@]} -eq 0 ] || build_containerd "${todo[@]}"
  [ -z "$(missing_kube_router)" ] || build_kube_router
  exec 9>&-
fi

echo "$bin"
