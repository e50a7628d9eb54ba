#!/usr/bin/env bash
# Builds the local control plane and the tools the project needs from Go
# modules (no download site is needed, only the Go module proxy), once, into a
# cache outside the repository:
#
#   kube-apiserver, kubectl   from k8s.io/kubernetes (staging modules pinned)
#   etcd                      from go.etcd.io/etcd/server/v3 (etcdmain.Main)
#   controller-gen            from sigs.k8s.io/controller-tools
#   helm                      from helm.sh/helm/v3
#   staticcheck               from honnef.co/go/tools (make verify)
#
# Usage: hack/control-plane.sh [path]
#   path (default)  build whatever is missing, then print the directory that
#                   holds the binaries as the last line (use it as
#                   KUBEBUILDER_ASSETS).
#
# Environment: SKYCALL_CACHE_DIR overrides the cache root
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/skycall).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/kubernetes-module.sh
. "$root/hack/lib/kubernetes-module.sh"

# The Kubernetes version follows k8s.io/api in go.mod: v0.37.2 -> v1.37.2.
api_version=$(awk '$1 == "k8s.io/api" { print $2; exit }' "$root/go.mod" 2>/dev/null || true)
api_version=${api_version:-v0.37.2}
k8s_version="v1.${api_version#v0.}"
etcd_version=${ETCD_VERSION:-v3.6.16}
controller_tools_version=${CONTROLLER_TOOLS_VERSION:-v0.23.0}
helm_version=${HELM_VERSION:-v3.22.0}
# staticcheck 2026.2.2: a release that reads Go 1.26 code.
staticcheck_version=${STATICCHECK_VERSION:-v0.8.2}

cache_root=${SKYCALL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/skycall}
bin="$cache_root/k8s-${k8s_version}"
work="$cache_root/build"
mkdir -p "$bin" "$work"

log() { printf '[control-plane] %s\n' "$*" >&2; }

# One build at a time: test packages run in parallel may all ask at once.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache_root/.lock"
  flock 9
fi

# Builds never touch the project's own go.mod: each tool has its own module.
export GOFLAGS=-mod=mod
export CGO_ENABLED=0

build_kubernetes() {
  local dir="$work/kubernetes-${k8s_version}"
  mkdir -p "$dir"
  log "building kube-apiserver and kubectl ${k8s_version} from k8s.io/kubernetes (first time only: several minutes)"
  kubernetes_module "$dir" skycall.local/kubernetes-tools "$k8s_version" "$api_version" kube-apiserver kubectl ||
    { log "cannot download k8s.io/kubernetes@${k8s_version}"; exit 1; }
  local pkg="k8s.io/component-base/version"
  local minor=${k8s_version#v1.}; minor=${minor%%.*}
  local ldflags="-s -w -X ${pkg}.gitVersion=${k8s_version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean -X ${pkg}/version.gitVersion=${k8s_version}"
  (cd "$dir" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
  log "kube-apiserver built"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl)
  mv "$bin/kubectl.tmp" "$bin/kubectl"
  log "kubectl built"
}

build_etcd() {
  local dir="$work/etcd-${etcd_version}"
  mkdir -p "$dir"
  log "building etcd ${etcd_version} from go.etcd.io/etcd/server/v3"
  cat >"$dir/main.go" <<'GO'
// Command etcd is etcd's own server, built from its Go module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  if [ ! -f "$dir/go.mod" ]; then
    (cd "$dir" && go mod init skycall.local/etcd >/dev/null 2>&1)
  fi
  (cd "$dir" && go get "go.etcd.io/etcd/server/v3@${etcd_version}" >/dev/null && go mod tidy >/dev/null)
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" .)
  mv "$bin/etcd.tmp" "$bin/etcd"
  log "etcd built"
}

build_go_tool() { # name module/cmd/path version
  local name=$1 pkg=$2 version=$3 mod=$4
  local dir="$work/${name}-${version}"
  mkdir -p "$dir"
  log "building ${name} ${version} from ${mod}"
  if [ ! -f "$dir/go.mod" ]; then
    (cd "$dir" && go mod init "skycall.local/${name}" >/dev/null 2>&1)
  fi
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$dir/tools.go"
  (cd "$dir" && go get "${mod}@${version}" >/dev/null && go mod tidy >/dev/null)
  (cd "$dir" && go build -trimpath -ldflags "-s -w $5" -o "$bin/${name}.tmp" "$pkg")
  mv "$bin/${name}.tmp" "$bin/${name}"
  log "${name} built"
}

[ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ] || build_kubernetes
[ -x "$bin/etcd" ] || build_etcd
[ -x "$bin/controller-gen" ] || build_go_tool controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen "$controller_tools_version" sigs.k8s.io/controller-tools ""
# helm's offline default (helm template, helm lint) is Kubernetes 1.20; make
# it the version this project builds against.
k8s_minor=${k8s_version#v1.}; k8s_minor=${k8s_minor%%.*}
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=${helm_version}"
for p in pkg/chartutil pkg/lint/rules; do
  helm_ldflags="$helm_ldflags -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=${k8s_minor}"
done
[ -x "$bin/helm" ] || build_go_tool helm helm.sh/helm/v3/cmd/helm "$helm_version" helm.sh/helm/v3 "$helm_ldflags"
[ -x "$bin/staticcheck" ] || build_go_tool staticcheck honnef.co/go/tools/cmd/staticcheck "$staticcheck_version" honnef.co/go/tools ""

echo "$bin"
