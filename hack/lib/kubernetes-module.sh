# Sourced by hack/control-plane.sh and hack/cluster-tools.sh: the one recipe
# for building Kubernetes commands from the k8s.io/kubernetes module.
#
# kubernetes_module DIR MODULE K8S_VERSION API_VERSION CMD...
#   writes DIR/go.mod (module MODULE requiring k8s.io/kubernetes
#   K8S_VERSION, with every staging module kubernetes requires at v0.0.0 --
#   the ones its own go.mod points at ./staging/... -- pinned to the
#   published API_VERSION) and DIR/tools.go importing k8s.io/kubernetes/cmd/CMD
#   for each CMD. Returns 1 when the module cannot be downloaded.
kubernetes_module() {
  local dir=$1 module=$2 k8s_version=$3 api_version=$4
  shift 4
  local gomod c
  gomod=$(cd "$dir" && GOFLAGS= go mod download -json "k8s.io/kubernetes@${k8s_version}" | awk -F'"' '/"GoMod":/ { print $4 }')
  [ -n "$gomod" ] || return 1
  {
    echo "module ${module}"
    echo
    awk '$1 == "go" { print; exit }' "$gomod"
    echo
    echo "require k8s.io/kubernetes ${k8s_version}"
    echo
    echo "replace ("
    awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { printf "\t%s => %s %s\n", $1, $1, "'"${api_version}"'" }' "$gomod"
    echo ")"
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
  } >"$dir/tools.go"
}
