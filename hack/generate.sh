#!/usr/bin/env bash
# Runs controller-gen: deepcopy (api/v1/zz_generated.deepcopy.go), the CRD
# (config/crd/bases) and the manager's RBAC (config/rbac/role.yaml), and
# copies the CRD and the manager's ClusterRole into the Helm chart.
#
# Usage: hack/generate.sh            regenerate in place
#        hack/generate.sh --verify   regenerate into a temporary directory and
#                                    fail if any generated file in the tree
#                                    is stale or was edited by hand
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools=$(hack/control-plane.sh | tail -n 1)
cg="$tools/controller-gen"

out=$root
if [ "${1:-}" = "--verify" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  mkdir -p "$out/api/v1" "$out/config/crd/bases" "$out/config/rbac" "$out/charts/skycall/templates/crd"
fi

"$cg" object:headerFile=hack/boilerplate.go.txt paths=./api/... output:object:dir="$out/api/v1"
"$cg" crd paths=./api/... output:crd:dir="$out/config/crd/bases"
"$cg" rbac:roleName=skycall-manager paths=./controllers/... output:rbac:dir="$out/config/rbac"
if [ -d charts/skycall/templates ]; then
  hack/chart-crd.sh "$out/config/crd/bases" "$out/charts/skycall/templates/crd"
  hack/chart-rbac.sh "$out/config/rbac/role.yaml" "$out/charts/skycall/templates/rbac/role.yaml"
fi

if [ "$out" != "$root" ]; then
  stale=0
  for f in api/v1/zz_generated.deepcopy.go config/crd/bases/*.yaml config/rbac/role.yaml; do
    if ! diff -u "$f" "$out/$f"; then
      echo "generated file $f is stale: run 'make generate manifests' and commit the result" >&2
      stale=1
    fi
  done
  if [ -d charts/skycall/templates/crd ]; then
    if ! diff -ru charts/skycall/templates/crd "$out/charts/skycall/templates/crd"; then
      echo "the chart's CRD is stale: run 'make manifests' and commit the result" >&2
      stale=1
    fi
  fi
  if [ -d charts/skycall/templates ]; then
    if ! diff -u charts/skycall/templates/rbac/role.yaml "$out/charts/skycall/templates/rbac/role.yaml"; then
      echo "the chart's manager ClusterRole is stale: run 'make manifests' and commit the result" >&2
      stale=1
    fi
  fi
  [ "$stale" = 0 ] || exit 1
  echo "generated files are current"
fi
