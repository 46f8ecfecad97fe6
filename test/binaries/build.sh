#!/usr/bin/env bash
# Builds the real binaries the tests run (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, etcd, the node's kubelet and kube-proxy, auth_server, registry, versitygw, crictl,
# coredns, prometheus + promtool, kube-state-metrics; the Prometheus Operator's CRD files)
# from pinned Go modules and caches them outside the repository, keyed by version.
# Installs nginx, skopeo, bubblewrap and containerd from Debian when they are missing.
# Prints the directory that holds the Go-built binaries (the KUBEBUILDER_ASSETS convention).
#
# When KUBEBUILDER_ASSETS is set, the control plane binaries, etcd and kubectl are taken from there
# instead.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${IRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/image-registry-operator}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { echo "[binaries] $*" >&2; }

# build_once <cache-dir> <command...>: runs the build into <cache-dir> unless it is complete.
build_once() {
  local dir="$1"; shift
  if [[ -f "$dir/.complete" ]]; then return 0; fi
  log "building into $dir"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  local started=$SECONDS
  # explicit check: set -e does not apply inside a function called from an if
  if ! "$@" "$dir.tmp"; then rm -rf "$dir.tmp"; return 1; fi
  touch "$dir.tmp/.complete"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "built $(basename "$dir") in $((SECONDS - started))s"
}

kubernetes_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
# the real node's (test/support/node/): always built here, envtest's KUBEBUILDER_ASSETS has none
node_binaries=(kubelet kube-proxy)

# build_kubernetes <out> <cmd...>: the named k8s.io/kubernetes/cmd/ binaries of the pinned release
build_kubernetes() {
  local out="$1" minor="${KUBERNETES_VERSION#1.}"; shift
  minor="${minor%%.*}"
  # upstream's build tags and version stamping, so /version reports the real release
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$KUBERNETES_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v$KUBERNETES_VERSION"
  (cd "$here/kubernetes" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" \
    -o "$out/" "${@/#/k8s.io/kubernetes/cmd/}")
}
build_control_plane() { build_kubernetes "$1" "${kubernetes_binaries[@]}"; }
build_node() { build_kubernetes "$1" "${node_binaries[@]}"; }

build_etcd() {
  local out="$1"
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_auth_server() {
  local out="$1"
  GOBIN="$out" go install -trimpath -ldflags "-s -w -X main.Version=$DOCKER_AUTH_VERSION" \
    "github.com/cesanta/docker_auth/auth_server@$DOCKER_AUTH_PSEUDO_VERSION"
}

build_registry() {
  local out="$1"
  GOBIN="$out" go install -trimpath \
    -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=v$REGISTRY_VERSION" \
    "github.com/distribution/distribution/v3/cmd/registry@v$REGISTRY_VERSION"
}

# versitygw: the S3 server the tests keep bucket registries in (Apache-2.0, no replace lines)
build_versitygw() {
  local out="$1"
  GOBIN="$out" go install -trimpath \
    -ldflags "-s -w -X main.Version=v$VERSITYGW_VERSION" \
    "github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION"
}

# CoreDNS: the wrapper module's main.go (the plugins of the test cluster's Corefile only)
build_coredns() {
  local out="$1"
  (cd "$here/coredns" && go build -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=v$COREDNS_VERSION" -o "$out/coredns" .)
}

# crictl: the CRI client (the kubelet's side of an image pull) of the node-trust test
build_crictl() {
  local out="$1"
  GOBIN="$out" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRI_TOOLS_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@v$CRI_TOOLS_VERSION"
}

# Prometheus and promtool without the service-discovery plugins (the tests scrape static targets):
# remove_all_sd leaves the kubernetes, cloud and other SD packages, most of the build, out
build_prometheus() {
  local out="$1" minor="${PROMETHEUS_MODULE_VERSION#0.}"
  minor="${minor%%.*}"
  # module v0.316.0 is Prometheus 3.16.0
  GOBIN="$out" go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=3.$((minor - 300)).${PROMETHEUS_MODULE_VERSION##*.}" \
    "github.com/prometheus/prometheus/cmd/prometheus@v$PROMETHEUS_MODULE_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@v$PROMETHEUS_MODULE_VERSION"
}

build_kube_state_metrics() {
  local out="$1"
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "k8s.io/kube-state-metrics/v2@v$KUBE_STATE_METRICS_VERSION"
}

# the CRDs of the kinds kustomize/monitoring uses, as the Prometheus Operator's module ships them
fetch_prometheus_operator_crds() {
  local out="$1" dir
  dir="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  for kind in podmonitors servicemonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$out/"
  done
}

install_debian_tools() {
  local missing=()
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
  command -v skopeo >/dev/null || missing+=(skopeo)
  command -v bwrap >/dev/null || missing+=(bubblewrap)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v ip >/dev/null || [[ -x /usr/sbin/ip ]] || missing+=(iproute2)
  command -v setpriv >/dev/null || missing+=(util-linux)
  # the real node's images (test/support/node/images.ts): a static /bin/busybox for their sh and applets
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  # the pause image's static binary: gcc with glibc's static libraries
  command -v gcc >/dev/null || missing+=(gcc)
  dpkg -s libc6-dev >/dev/null 2>&1 || missing+=(libc6-dev)
  # the real node's container runtime, its OCI runtime and CNI plugins (started by the tests)
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || [[ -x /usr/sbin/runc ]] || missing+=(runc)
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  # kube-proxy's iptables mode, and the conntrack entries it clears
  command -v iptables-restore >/dev/null || [[ -x /usr/sbin/iptables-restore ]] || missing+=(iptables)
  command -v conntrack >/dev/null || [[ -x /usr/sbin/conntrack ]] || missing+=(conntrack)
  command -v nsenter >/dev/null || missing+=(util-linux)
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    local sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    local apt_log; apt_log="$(mktemp)"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
      cat "$apt_log" >&2; rm -f "$apt_log"; return 1
    fi
    rm -f "$apt_log"
  fi
}

install_debian_tools
if [[ -z "${KUBEBUILDER_ASSETS:-}" ]]; then
  # "-cp": the whole control plane; caches of the apiserver-only build lack the controllers
  build_once "$cache_root/build/kubernetes-cp-v$KUBERNETES_VERSION" build_control_plane
  build_once "$cache_root/build/etcd-v$ETCD_VERSION" build_etcd
fi
# The Go module proxy this project can reach refuses docker_auth (403 "This module version is not
# available"); tests that need auth_server say so and skip, instead of running a stand-in.
auth_unavailable="$cache_root/build/docker_auth-$DOCKER_AUTH_VERSION.unavailable"
if ! build_once "$cache_root/build/docker_auth-$DOCKER_AUTH_VERSION" build_auth_server 2>"$auth_unavailable.log"; then
  mv "$auth_unavailable.log" "$auth_unavailable"
  log "auth_server unavailable: $(grep -m1 -o 'reading .*' "$auth_unavailable" || tail -1 "$auth_unavailable")"
else
  cat "$auth_unavailable.log" >&2; rm -f "$auth_unavailable" "$auth_unavailable.log"
fi
build_once "$cache_root/build/kubernetes-node-v$KUBERNETES_VERSION" build_node
build_once "$cache_root/build/registry-v$REGISTRY_VERSION" build_registry
build_once "$cache_root/build/versitygw-v$VERSITYGW_VERSION" build_versitygw
build_once "$cache_root/build/crictl-v$CRI_TOOLS_VERSION" build_crictl
build_once "$cache_root/build/prometheus-v$PROMETHEUS_MODULE_VERSION-nosd" build_prometheus
build_once "$cache_root/build/kube-state-metrics-v$KUBE_STATE_METRICS_VERSION" build_kube_state_metrics
build_once "$cache_root/build/prometheus-operator-crds-v$PROMETHEUS_OPERATOR_VERSION" fetch_prometheus_operator_crds
# keyed by the wrapper's plugin set too: a plugin added is a new build
coredns_build="$cache_root/build/coredns-v$COREDNS_VERSION-$(sha256sum "$here/coredns/main.go" | cut -c1-12)"
build_once "$coredns_build" build_coredns

# One directory with every binary, KUBEBUILDER_ASSETS style; symlinks point into the versioned builds.
assets="$cache_root/assets-k$KUBERNETES_VERSION-e$ETCD_VERSION-a$DOCKER_AUTH_VERSION-r$REGISTRY_VERSION-s$VERSITYGW_VERSION"
mkdir -p "$assets"
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for b in "${kubernetes_binaries[@]}" etcd; do ln -sfn "$KUBEBUILDER_ASSETS/$b" "$assets/$b"; done
else
  for b in "${kubernetes_binaries[@]}"; do ln -sfn "$cache_root/build/kubernetes-cp-v$KUBERNETES_VERSION/$b" "$assets/$b"; done
  ln -sfn "$cache_root/build/etcd-v$ETCD_VERSION/etcd" "$assets/etcd"
fi
if [[ -f "$auth_unavailable" ]]; then
  rm -f "$assets/auth_server"; cp "$auth_unavailable" "$assets/auth_server.unavailable"
else
  ln -sfn "$cache_root/build/docker_auth-$DOCKER_AUTH_VERSION/auth_server" "$assets/auth_server"
  rm -f "$assets/auth_server.unavailable"
fi
for b in "${node_binaries[@]}"; do ln -sfn "$cache_root/build/kubernetes-node-v$KUBERNETES_VERSION/$b" "$assets/$b"; done
ln -sfn "$cache_root/build/registry-v$REGISTRY_VERSION/registry" "$assets/registry"
ln -sfn "$cache_root/build/versitygw-v$VERSITYGW_VERSION/versitygw" "$assets/versitygw"
ln -sfn "$cache_root/build/crictl-v$CRI_TOOLS_VERSION/crictl" "$assets/crictl"
ln -sfn "$coredns_build/coredns" "$assets/coredns"
for b in prometheus promtool; do ln -sfn "$cache_root/build/prometheus-v$PROMETHEUS_MODULE_VERSION-nosd/$b" "$assets/$b"; done
ln -sfn "$cache_root/build/kube-state-metrics-v$KUBE_STATE_METRICS_VERSION/kube-state-metrics" "$assets/kube-state-metrics"
ln -sfn "$cache_root/build/prometheus-operator-crds-v$PROMETHEUS_OPERATOR_VERSION" "$assets/prometheus-operator-crds"
echo "$assets"
