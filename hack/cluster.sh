#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, for the cluster tests
# and `make demo-cluster`: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy (nftables), a real kubelet with containerd and
# runc, pods in their own network namespaces on a bridge, and kube-router's
# network policy controller enforcing NetworkPolicies (iptables and ipsets on
# the bridged traffic). Everything is built from Go modules or Debian packages
# by hack/cluster-tools.sh; images come from hack/ociimage (no registry, no
# Docker).
#
# Usage (as root, on Linux):
#   hack/cluster.sh up       start it; the last line printed is the admin
#                            kubeconfig (valid until `down`)
#   hack/cluster.sh images   build the pause, manager, demo, agent and skynet images from this
#                            work tree and import them into the cluster
#   hack/cluster.sh down     tear it down: workloads first, then processes,
#                            mounts, nftables, kube-router's iptables chains
#                            and ipsets, the bridge, cgroups and host paths
#                            it created; fails when anything is left
#   hack/cluster.sh check    exit 0 when nothing of a cluster is left behind
#
# Network: the bridge skycall0 holds ${SKYCALL_CLUSTER_NET}.0.1/16 (default
# 10.213.0.1); pods get ${NET}.1.x and a route to the Service range
# ${NET}.128.0/20 through the bridge, and no default route. No masquerade, no
# forwarding (ip_forward stays as it is): nothing leaves the bridge's /16.
# kube-apiserver listens on the bridge address, where the `kubernetes`
# Service's DNAT lands, so pods use the ordinary rest.InClusterConfig().
#
# Environment:
#   SKYCALL_CLUSTER_DIR  state directory (default /var/tmp/skycall-cluster);
#                        removed by `down`. DIR.lock (up/down) and
#                        DIR.session.lock (test/cluster's users) stay beside
#                        it: removing a lock file would race its next user.
#   SKYCALL_CLUSTER_NET  first two octets of the bridge's /16 (default 10.213)
#   SKYCALL_CLUSTER_WAIT_PERCENT  scales every readiness deadline (default
#                        100; 300 on a very slow machine; the tests use 1 to
#                        see a failed start clean up after itself)
#   SKYCALL_CACHE_DIR    as in hack/control-plane.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${SKYCALL_CLUSTER_DIR:-/var/tmp/skycall-cluster}
net=${SKYCALL_CLUSTER_NET:-10.213}
bridge=skycall0
node_ip="${net}.0.1"
bridge_cidr="${net}.0.0/16"
pod_cidr="${net}.0.0/17"
service_cidr="${net}.128.0/20"
kubernetes_service_ip="${net}.128.1"
node_name=skycall-node
api_port=6443
etcd_port=23790
wait_percent=${SKYCALL_CLUSTER_WAIT_PERCENT:-100}
[[ "$wait_percent" =~ ^[1-9][0-9]*$ ]] || { echo "SKYCALL_CLUSTER_WAIT_PERCENT must be a positive integer, not '$wait_percent'" >&2; exit 2; }
# Images: pinned by containerd as the sandbox image, and what charts and
# tests use with imagePullPolicy: Never.
pause_image=localhost/skycall/pause:dev
# Paths kubelet, libcni and the containerd shim (its socket directory) write
# whatever their configuration says; removed by
# `down` only when `up` created them.
host_dirs=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd)
# Kernel settings kubelet changes on start (its "kernel tunables"), and the
# one `up` sets so that bridged pod-to-pod traffic passes iptables, where
# kube-router filters it; `down` puts back what they were.
sysctls=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes
  net/bridge/bridge-nf-call-iptables)
# What kube-router's network policy controller makes: iptables chains in the
# filter table (with jumps from INPUT, FORWARD and OUTPUT) and ipsets.
kube_router_chains='^KUBE-(ROUTER|NWPLCY|POD-FW)-'
kube_router_ipsets='^KUBE-(SRC|DST)-'
# Cgroups kubelet (cgroupfs driver) and runc create under every hierarchy.
cgroup_names=(kubepods k8s.io)

t0=$(date +%s)
log() { printf '[cluster %3ds] %s\n' $(($(date +%s) - t0)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

preflight() {
  [ "$(uname -s)" = Linux ] || die "needs Linux (kubelet, network namespaces, cgroups)"
  [ "$(id -u)" = 0 ] || die "needs root (bridge, network namespaces, mounts, cgroups)"
  command -v flock >/dev/null || die "needs flock (Debian package util-linux)"
}

lock() { # the operation lock: one up or down at a time
  exec 7>"${state%/}.lock"
  if ! flock -n 7; then
    log "waiting (up to 5 minutes) for another hack/cluster.sh holding ${state%/}.lock"
    flock -w 300 7 || die "${state%/}.lock still held after 5 minutes (by: $(fuser "${state%/}.lock" 2>/dev/null || echo unknown))"
  fi
}

kubectl() { "$tools/kubectl" --kubeconfig "$state/pki/admin.kubeconfig" "$@"; }
ctr() { "$tools/ctr" --address "$state/run/containerd/containerd.sock" -n k8s.io "$@"; }

alive() { # component
  local f="$state/run/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

start() { # component binary args...
  local name=$1; shift
  # 7>&-: the daemons must not inherit the operation lock, or they would
  # hold it for their whole life.
  nohup "$@" >"$state/logs/$name.log" 2>&1 </dev/null 7>&- &
  echo $! >"$state/run/$name.pid"
}

# wait_for component seconds what command...: polls until command succeeds;
# on timeout prints the component's log tail and fails.
wait_for() {
  local name=$1 seconds=$2 what=$3; shift 3
  seconds=$((seconds * wait_percent / 100))
  [ "$seconds" -ge 1 ] || seconds=1
  local deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    # The log tail first, then what failed, so the last line says it.
    if ! alive "$name"; then
      tail -n 40 "$state/logs/$name.log" | sed 's/^/    /' >&2 || true
      die "$name exited while waiting for: $what (above: the last lines of $state/logs/$name.log)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 40 "$state/logs/$name.log" | sed 's/^/    /' >&2 || true
      die "$what: not within ${seconds}s (above: the last lines of $state/logs/$name.log)"
    fi
    sleep 0.3
  done
  log "$what"
}

# --- certificates and kubeconfigs ------------------------------------------
gen_pki() {
  local p="$state/pki"
  mkdir -p "$p"
  # ECDSA P-256 throughout: fast to make on a loaded machine, and accepted by
  # every component (service-account tokens are then ES256).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$p/ca.key" -out "$p/ca.crt" -days 7 -subj "/CN=skycall-cluster-ca" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$p/sa.key" 2>/dev/null
  openssl ec -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  cert() { # name subject [subjectAltName]
    local n=$1 subj=$2 san=${3:-}
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$p/$n.key" -out "$p/$n.csr" -subj "$subj" 2>/dev/null
    if [ -n "$san" ]; then
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" >"$p/$n.ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' >"$p/$n.ext"
    fi
    openssl x509 -req -in "$p/$n.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
      -out "$p/$n.crt" -days 7 -extfile "$p/$n.ext" 2>/dev/null
    rm -f "$p/$n.csr" "$p/$n.ext"
  }
  cert apiserver "/CN=kube-apiserver" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:${node_ip},IP:${kubernetes_service_ip},IP:127.0.0.1"
  cert admin "/O=system:masters/CN=skycall-admin"
  cert kubelet "/O=system:nodes/CN=system:node:${node_name}"
  cert kubelet-serving "/CN=${node_name}" "DNS:${node_name},IP:${node_ip}"
  cert kcm "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  cert kube-router "/CN=system:kube-router"
  local n
  for n in admin kubelet kcm scheduler kube-proxy kube-router; do
    cat >"$p/$n.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: skycall
  cluster:
    server: https://${node_ip}:${api_port}
    certificate-authority: $p/ca.crt
users:
- name: $n
  user:
    client-certificate: $p/$n.crt
    client-key: $p/$n.key
contexts:
- name: skycall
  context: {cluster: skycall, user: $n}
current-context: skycall
KC
  done
}

# --- configuration files -----------------------------------------------------
write_configs() {
  local c="$state/conf"
  mkdir -p "$c" "$state/cni/net.d"
  cat >"$c/containerd.toml" <<TOML
version = 4
root = '$state/run/containerd/root'
state = '$state/run/containerd/state'
disabled_plugins = [
  'io.containerd.nri.v1.nri',
  'io.containerd.internal.v1.opt',
  'io.containerd.snapshotter.v1.blockfile',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.erofs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.tracing.processor.v1.otlp',
]

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '${pause_image}'

  [plugins.'io.containerd.cri.v1.runtime']
    disable_apparmor = true
    # No CAP_SYS_RESOURCE on this kind of machine: runc cannot lower
    # oom_score_adj (see shared/k8s-local/RECIPE.md).
    restrict_oom_score_adj = true
    enable_criu = false
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        sandboxer = 'podsandbox'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '/usr/sbin/runc'
          SystemdCgroup = false
          Root = '$state/run/runc'
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$state/cni/net.d'
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.server.v1.grpc']
    address = '$state/run/containerd/containerd.sock'

  [plugins.'io.containerd.server.v1.ttrpc']
    address = '$state/run/containerd/containerd.sock.ttrpc'
TOML
  # isGateway false and no masquerade: the bridge keeps the node's address,
  # pods reach only the bridge's /16, and the Service range through the
  # bridge, where kube-proxy's DNAT sends it to local processes.
  cat >"$state/cni/net.d/10-skycall.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "skycall",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${bridge}",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${bridge_cidr}", "rangeStart": "${net}.1.1", "rangeEnd": "${net}.1.254", "gateway": "${node_ip}"}]],
        "routes": [{"dst": "${service_cidr}", "gw": "${node_ip}"}],
        "dataDir": "$state/cni/ipam"
      }
    }
  ]
}
JSON
  # No cluster DNS: pods resolve nothing (they use pod IPs and the API).
  : >"$c/resolv.conf"
  cat >"$c/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${node_ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $state/pki/kubelet-serving.crt
tlsPrivateKeyFile: $state/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization:
  mode: AlwaysAllow
# cgroup v1 only here: kubelet 1.37 refuses it unless told otherwise.
cgroupDriver: cgroupfs
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failCgroupV1: false
failSwapOn: false
kernelMemcgNotification: false
localStorageCapacityIsolation: false
containerRuntimeEndpoint: unix://$state/run/containerd/containerd.sock
imageServiceEndpoint: unix://$state/run/containerd/containerd.sock
staticPodPath: ""
clusterDomain: cluster.local
clusterDNS: []
resolvConf: $c/resolv.conf
maxPods: 50
serializeImagePulls: false
# The eviction manager cannot read disk stats here; images are never pulled
# again, so never collect them.
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
protectKernelDefaults: false
makeIPTablesUtilChains: false
rotateCertificates: false
serverTLSBootstrap: false
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
fileCheckFrequency: 10s
podLogsDir: $state/run/pod-logs
volumePluginDir: $state/run/kubelet-volume-plugins
oomScoreAdj: 0
YAML
  # conntrack values 0: leave the host's sysctls alone.
  cat >"$c/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: $state/pki/kube-proxy.kubeconfig
hostnameOverride: ${node_name}
clusterCIDR: ${pod_cidr}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["${node_ip}/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
}

# --- up ------------------------------------------------------------------------
up() {
  preflight
  tools=$("$root/hack/cluster-tools.sh" | tail -n 1)
  lock
  if [ -d "$state" ]; then
    if alive apiserver || alive kubelet || alive containerd; then
      die "a cluster is already up in $state (kubeconfig $state/pki/admin.kubeconfig); run hack/cluster.sh down first"
    fi
    log "removing what a previous run left in $state"
    teardown || true
  fi
  if ip link show "$bridge" >/dev/null 2>&1; then
    die "a network interface named $bridge already exists; remove it (ip link del $bridge) or run hack/cluster.sh down"
  fi
  if ip -o -4 addr show | grep -q " ${net}\."; then
    die "${bridge_cidr} is already used on this machine; set SKYCALL_CLUSTER_NET to other first octets (e.g. 10.214)"
  fi
  local port
  for port in "$etcd_port" $((etcd_port + 10)) 10248 10249 10256 10257 10259; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "127.0.0.1:$port is in use; the cluster needs it (is another cluster running?)"
    fi
  done

  # From here on, any failure tears down what was started.
  trap 'rc=$?; if [ $rc -ne 0 ]; then log "bringing the cluster up failed; tearing down"; teardown || true; fi' EXIT
  mkdir -p "$state"/{run,logs,bin}
  # down removes the state directory only when it carries this mark, so a
  # mistyped SKYCALL_CLUSTER_DIR never deletes someone's files.
  : >"$state/.skycall-cluster"
  local d
  for d in "${host_dirs[@]}"; do [ -e "$d" ] || echo "$d" >>"$state/created-host-dirs"; done
  for d in /sys/fs/cgroup/*/; do
    for n in "${cgroup_names[@]}"; do [ -e "$d$n" ] || echo "$d$n" >>"$state/created-cgroups"; done
  done
  echo "$tools" >"$state/tools"
  local k
  for k in "${sysctls[@]}"; do echo "$k $(cat "/proc/sys/$k")" >>"$state/sysctls"; done
  # iptables (nftables backend) makes the table `ip filter` for kube-router's
  # chains; down removes it only when it was not there before.
  nft list table ip filter >/dev/null 2>&1 || echo "ip filter" >>"$state/created-nft-tables"
  log "state in $state, tools in $tools"

  gen_pki
  write_configs
  log "certificates, kubeconfigs and configuration written"

  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] ||
    die "/proc/sys/net/bridge/bridge-nf-call-iptables is missing (kernel module br_netfilter): NetworkPolicies could not be enforced"
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  ip link add "$bridge" type bridge
  ip addr add "${node_ip}/16" dev "$bridge"
  ip link set "$bridge" up
  log "bridge $bridge ${node_ip}/16 up"

  # containerd finds its shim and runc on PATH.
  PATH="$tools:/usr/sbin:/usr/bin:/sbin:/bin" start containerd "$tools/containerd" --config "$state/conf/containerd.toml"
  wait_for containerd 60 "containerd ready" ctr version
  local pause_tar="$state/images/pause.tar"
  mkdir -p "$state/images"
  (cd "$root" && go run ./hack/ociimage -out "$state/images" pause >/dev/null)
  import_image "$pause_tar"
  log "pause image $pause_image imported"

  start etcd "$tools/etcd" --name skycall --data-dir "$state/run/etcd" \
    --listen-client-urls "http://127.0.0.1:${etcd_port}" --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 10))" \
    --initial-cluster "skycall=http://127.0.0.1:$((etcd_port + 10))" --unsafe-no-fsync --listen-metrics-urls ''
  wait_for etcd 60 "etcd healthy" sh -c "curl -sf http://127.0.0.1:${etcd_port}/health | grep -q true"

  local p="$state/pki"
  start apiserver "$tools/kube-apiserver" --etcd-servers="http://127.0.0.1:${etcd_port}" \
    --bind-address="$node_ip" --secure-port="$api_port" --advertise-address="$node_ip" --cert-dir="$state/run/apiserver" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range="$service_cidr" --authorization-mode=Node,RBAC --allow-privileged=true \
    --kubelet-client-certificate="$p/admin.crt" --kubelet-client-key="$p/admin.key" \
    --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP
  wait_for apiserver 120 "kube-apiserver ready on https://${node_ip}:${api_port}" \
    curl -sf --cacert "$p/ca.crt" "https://${node_ip}:${api_port}/readyz"

  mkdir -p "$state/run/kubelet"
  start kubelet "$tools/kubelet" --config="$state/conf/kubelet.yaml" \
    --kubeconfig="$p/kubelet.kubeconfig" --root-dir="$state/run/kubelet" --cert-dir="$state/run/kubelet/pki" \
    --hostname-override="$node_name" --node-ip="$node_ip" --v=1
  start kcm "$tools/kube-controller-manager" --kubeconfig="$p/kcm.kubeconfig" \
    --authentication-kubeconfig="$p/kcm.kubeconfig" --authorization-kubeconfig="$p/kcm.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
    --controllers='*' --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --allocate-node-cidrs=false --service-cluster-ip-range="$service_cidr" \
    --flex-volume-plugin-dir="$state/run/kcm-flexvolume"
  start scheduler "$tools/kube-scheduler" --kubeconfig="$p/scheduler.kubeconfig" \
    --authentication-kubeconfig="$p/scheduler.kubeconfig" --authorization-kubeconfig="$p/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
  start kube-proxy "$tools/kube-proxy" --config="$state/conf/kube-proxy.yaml"

  wait_for kubelet 120 "node $node_name Ready" sh -c \
    "'$tools/kubectl' --kubeconfig '$p/admin.kubeconfig' get node $node_name -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
  wait_for kcm 120 "ServiceAccount default/default made by the controller manager" kubectl get serviceaccount default -n default
  start_kube_router
  wait_for scheduler 60 "kube-scheduler healthy" curl -sfk https://127.0.0.1:10259/healthz
  # What a pod's rest.InClusterConfig() does: the `kubernetes` Service's
  # ClusterIP, DNATed by kube-proxy to the apiserver on the bridge.
  wait_for kube-proxy 120 "Service kubernetes (${kubernetes_service_ip}:443) reaches the apiserver through kube-proxy" \
    curl -sf --cacert "$p/ca.crt" "https://${kubernetes_service_ip}:443/readyz"

  trap - EXIT
  log "cluster up; kubeconfig:"
  echo "$state/pki/admin.kubeconfig"
}

# kube-router's network policy controller alone (no routing, no service
# proxy: kube-proxy has those), as a host process like kube-proxy. It needs
# the Node (its InternalIP) to exist, so it starts once the node is Ready.
# Traffic from the node itself (kubelet probes) it always admits.
start_kube_router() {
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "skycall:kube-router"}
rules:
- apiGroups: [""]
  resources: [pods, namespaces, nodes, services, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "skycall:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "skycall:kube-router"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-router"}
YAML
  # No health or metrics port: nothing of it listens on the host.
  PATH="/usr/sbin:/usr/bin:/sbin:/bin" start kube-router "$tools/kube-router" \
    --kubeconfig="$state/pki/kube-router.kubeconfig" --hostname-override="$node_name" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --service-cluster-ip-range="$service_cidr" --health-port=0 --metrics-port=0 --iptables-sync-period=1m
  # Its first full sync ends by writing this rule.
  wait_for kube-router 60 "kube-router enforcing NetworkPolicies (iptables chain KUBE-ROUTER-FORWARD)" sh -c \
    "iptables -w -t filter -S KUBE-ROUTER-FORWARD | grep -q 'explicitly ACCEPT'"
}

# remove_kube_router_rules removes kube-router's chains, the jumps to them
# and its ipsets (kube-router leaves them when stopped), and the table
# `ip filter` when up made it.
remove_kube_router_rules() {
  local rules
  rules=$(iptables-save -t filter 2>/dev/null || true)
  if grep -Eq "^:${kube_router_chains#^}" <<<"$rules"; then
    local c n chains
    for c in INPUT FORWARD OUTPUT; do
      for n in $(iptables -w -t filter -L "$c" -n --line-numbers | awk -v re="$kube_router_chains" '$2 ~ re { print $1 }' | sort -rn); do
        iptables -w -t filter -D "$c" "$n" || true
      done
    done
    chains=$(iptables-save -t filter | awk -v re="$kube_router_chains" '/^:/ { c = substr($1, 2); if (c ~ re) print c }')
    for c in $chains; do iptables -w -t filter -F "$c" || true; done
    for c in $chains; do iptables -w -t filter -X "$c" || true; done
  fi
  if command -v ipset >/dev/null; then
    local s
    for s in $(ipset list -n 2>/dev/null | grep -E "$kube_router_ipsets"); do ipset destroy "$s" || true; done
  fi
  if [ -f "$state/created-nft-tables" ] && command -v nft >/dev/null; then
    local t
    while read -r t; do nft delete table $t 2>/dev/null || true; done <"$state/created-nft-tables"
  fi
}

import_image() { # tarball; ctr's output only when it fails
  local out
  out=$(ctr images import "$1" 2>&1) || { printf '%s\n' "$out" >&2; die "ctr images import $1 failed"; }
}

# --- images --------------------------------------------------------------------
images() {
  preflight
  [ -f "$state/tools" ] && alive containerd || die "no cluster is up in $state (hack/cluster.sh up)"
  tools=$(cat "$state/tools")
  (cd "$root" && go run ./hack/ociimage -out "$state/images" pause manager demo agent skynet)
  local t
  for t in "$state"/images/*.tar; do
    import_image "$t"
  done
  log "images imported: $(ctr images ls -q 2>/dev/null | grep '^localhost/skycall/' | tr '\n' ' ')"
}

# --- down ----------------------------------------------------------------------
stop() { # components...: SIGTERM by recorded pid, together; SIGKILL after 15 s
  local c pid i pids=() names=()
  for c in "$@"; do
    [ -f "$state/run/$c.pid" ] || continue
    pid=$(cat "$state/run/$c.pid")
    if kill "$pid" 2>/dev/null; then pids+=("$pid"); names+=("$c"); fi
    rm -f "$state/run/$c.pid"
  done
  for i in "${!pids[@]}"; do
    local waited=0
    while kill -0 "${pids[$i]}" 2>/dev/null && [ "$waited" -lt 60 ]; do sleep 0.25; waited=$((waited + 1)); done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      log "${names[$i]} (pid ${pids[$i]}) did not stop on SIGTERM; killing it"
      kill -9 "${pids[$i]}" 2>/dev/null || true
    fi
  done
}

teardown() {
  [ -d "$state" ] || return 0
  tools=$(cat "$state/tools" 2>/dev/null || true)
  if [ -n "$tools" ] && alive apiserver && alive kubelet && [ -f "$state/pki/admin.kubeconfig" ]; then
    # Workloads first, owners before pods and in the foreground, so that the
    # kubelet stops every pod and runs CNI DEL for it.
    log "deleting workloads"
    kubectl delete deployments,statefulsets,daemonsets,replicasets,jobs --all --all-namespaces \
      --cascade=foreground --wait=true --timeout=60s >/dev/null 2>&1 || true
    kubectl delete pods --all --all-namespaces --grace-period=2 --wait=true --timeout=60s >/dev/null 2>&1 || true
    # A pod object goes once the kubelet has stopped its sandbox (CNI DEL
    # done); the stopped containers themselves are removed below.
  fi
  log "stopping processes"
  stop kube-router kube-proxy kcm scheduler kubelet
  if [ -n "$tools" ] && alive containerd; then
    # Whatever the kubelet did not stop: kill tasks, delete containers (shims
    # exit, rootfs unmounted).
    local id
    for id in $(ctr tasks ls -q 2>/dev/null); do ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr containers ls -q 2>/dev/null); do
      ctr tasks rm -f "$id" >/dev/null 2>&1 || true
      ctr containers rm "$id" >/dev/null 2>&1 || true
    done
  fi
  stop containerd apiserver
  stop etcd
  if [ -f "$state/sysctls" ]; then
    local k v
    while read -r k v; do echo "$v" >"/proc/sys/$k" 2>/dev/null || log "cannot restore $k to $v"; done <"$state/sysctls"
  fi
  # Shims outlive containerd; they run from the state directory's sockets.
  # Clients of a user that died (kubectl, helm with this kubeconfig) would
  # hang on to the state directory too.
  local pid
  for pid in $(pgrep -f "$state/" 2>/dev/null || true); do
    [ "$pid" = $$ ] && continue
    log "stopping leftover process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)"
    kill -9 "$pid" 2>/dev/null || true
  done
  # Mounts left under the state directory (network namespaces, shm, rootfs),
  # deepest first.
  awk -v d="$state/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if command -v nft >/dev/null; then
    nft delete table ip kube-proxy 2>/dev/null || true
    nft delete table ip6 kube-proxy 2>/dev/null || true
  fi
  remove_kube_router_rules
  ip link del "$bridge" 2>/dev/null || true
  if [ -f "$state/created-host-dirs" ]; then
    while read -r d; do rm -rf "$d"; done <"$state/created-host-dirs"
  fi
  if [ -f "$state/created-cgroups" ]; then
    while read -r d; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done <"$state/created-cgroups"
  fi
  if [ -f "$state/.skycall-cluster" ]; then
    rm -rf "$state"
  else
    log "$state has no .skycall-cluster mark: not removing it"
  fi
  log "torn down"
}

# leftovers prints what a cluster left behind on this machine, one line
# each; $1 lists the host paths and cgroups `up` created, $2 the nftables
# tables, one a line (they are checked only then: a machine may have its
# own).
leftovers() {
  [ -e "$state" ] && echo "state directory $state"
  awk -v d="$state/" 'index($2, d) == 1 { print "mount " $2 }' /proc/mounts
  ip link show "$bridge" >/dev/null 2>&1 && echo "network interface $bridge"
  ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^veth/ && /master '"$bridge"'/ { print "veth " $2 }'
  if command -v nft >/dev/null; then
    nft list tables 2>/dev/null | grep -w kube-proxy | sed 's/^/nftables /'
  fi
  if command -v iptables-save >/dev/null; then
    iptables-save -t filter 2>/dev/null | awk -v re="$kube_router_chains" '/^:/ { c = substr($1, 2); if (c ~ re) print "iptables chain " c }'
  fi
  if command -v ipset >/dev/null; then
    ipset list -n 2>/dev/null | grep -E "$kube_router_ipsets" | sed 's/^/ipset /'
  fi
  pgrep -af "$state/" 2>/dev/null | sed 's/^/process /'
  local p
  for p in ${1:-}; do [ -e "$p" ] && echo "created path $p"; done
  local t
  while read -r t; do
    [ -n "$t" ] && nft list table $t >/dev/null 2>&1 && echo "nftables table $t"
  done <<<"${2:-}"
  true
}

down() {
  preflight
  lock
  local created tables
  created=$(cat "$state/created-host-dirs" "$state/created-cgroups" 2>/dev/null || true)
  tables=$(cat "$state/created-nft-tables" 2>/dev/null || true)
  teardown
  local left
  left=$(leftovers "$created" "$tables")
  if [ -n "$left" ]; then
    log "left behind after tear-down:"
    printf '  %s\n' "$left" >&2
    exit 1
  fi
}

# check: nothing of a cluster is running or mounted. Host paths and cgroups
# are checked by `down`, which knows which ones `up` created.
check() {
  local left
  left=$(leftovers)
  if [ -n "$left" ]; then
    printf '%s\n' "$left"
    exit 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  images) images ;;
  check) check ;;
  *) echo "usage: hack/cluster.sh up|images|down|check" >&2; exit 2 ;;
esac
