#!/usr/bin/env bash
# Build the local control plane's binaries from the Go module proxy into a versioned cache
# outside the checkout. Idempotent: a binary is rebuilt only when its pinned version changes.
#
#   etcd                                   go.etcd.io/etcd/server/v3
#   kube-apiserver, kube-controller-manager,
#   kube-scheduler, kubectl                k8s.io/kubernetes (wrapper module + staging replaces)
#   kwok                                   sigs.k8s.io/kwok/cmd/kwok
#   helm                                   helm.sh/helm/v3/cmd/helm
#   kstatus                                hack/kstatus/main.go over sigs.k8s.io/cli-utils/pkg/kstatus/status
#                                          (tests judge live objects with the real kstatus)
#   lws-manager (+ its CRD)                sigs.k8s.io/lws/cmd (LeaderWorkerSet controller and
#                                          webhooks; the "lws" cluster add-on runs it); the CRD is
#                                          copied from the module's config/crd/bases
#   prometheus                             github.com/prometheus/prometheus/cmd/prometheus (3.x is module
#                                          v0.3xx; built with upstream's tags remove_all_sd +
#                                          enable_kubernetes_sd; no embedded web UI assets)
#   prometheus-adapter                     sigs.k8s.io/prometheus-adapter/cmd/adapter
#   (lws-manager serves the "lws" add-on, the last two the "metrics" add-on; the default cluster
#    needs none of them: `build-binaries.sh --addons metrics,lws` or `--addons all` builds them)
#
# Prints the bin directory on its last line.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CLI_UTILS_VERSION="${CLI_UTILS_VERSION:-v0.37.2}"
LWS_VERSION="${LWS_VERSION:-v0.8.0}"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
PROMETHEUS_ADAPTER_VERSION="${PROMETHEUS_ADAPTER_VERSION:-v0.12.0}"

# --addons a,b (or TRTLLM_ADDONS=a,b): also build what those cluster add-ons run ("all": every one).
ADDONS="${TRTLLM_ADDONS:-}"
while (($#)); do
  case "$1" in
    --addons) ADDONS="$2"; shift 2 ;;
    --addons=*) ADDONS="${1#--addons=}"; shift ;;
    *) echo "usage: $0 [--addons metrics,lws|all]" >&2; exit 2 ;;
  esac
done
want_addon() { [[ ",$ADDONS," == *",$1,"* || ",$ADDONS," == *",all,"* ]]; }

CACHE_ROOT="${TRTLLM_OPERATOR_CACHE:-$HOME/.cache/trtllm-operator}"
CACHE="$CACHE_ROOT/k8s-$K8S_VERSION"
BIN="$CACHE/bin"
SRC="$CACHE/src"
mkdir -p "$BIN" "$SRC"

export GOFLAGS="-buildvcs=false -mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

log() { printf '[build-binaries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# up_to_date NAME VERSION: the binary exists and was built from VERSION.
up_to_date() { [[ -x "$BIN/$1" && "$(cat "$BIN/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"$BIN/.$1.version"; }

# wrapper DIR: a throwaway module to build other modules' commands from.
wrapper() {
  rm -rf "$1" && mkdir -p "$1" && cd "$1"
  go mod init "trtllm-operator.local/$(basename "$1")" >/dev/null 2>&1
}

build_etcd() {
  up_to_date etcd "$ETCD_VERSION" && { log "etcd $ETCD_VERSION: cached"; return; }
  log "etcd $ETCD_VERSION: building"
  local t0=$SECONDS
  ( wrapper "$SRC/etcd"
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3 )
  stamp etcd "$ETCD_VERSION"
  log "etcd: built in $((SECONDS - t0)) s"
}

build_kubernetes() {
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl) c all=1
  for c in "${cmds[@]}"; do up_to_date "$c" "$K8S_VERSION" || all=0; done
  (( all )) && { log "kubernetes $K8S_VERSION: cached"; return; }
  log "kubernetes $K8S_VERSION: building ${cmds[*]} (the long one: about 7 min cold on 2 cores)"
  local t0=$SECONDS staging="v0${K8S_VERSION#v1}"
  ( wrapper "$SRC/kubernetes"
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    # Every staging module is required at v0.0.0 upstream; point each at its published tag.
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk '{print $1}' | while read -r m; do
      go mod edit -replace="$m=$m@$staging"
    done
    ver="k8s.io/component-base/version"
    minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    ldflags="-s -w -X $ver.gitVersion=$K8S_VERSION -X $ver.gitMajor=1 -X $ver.gitMinor=$minor"
    ldflags+=" -X $ver.gitTreeState=clean -X $ver.buildDate=1970-01-01T00:00:00Z"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    go mod download
    pkgs=(); for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    go build -trimpath -ldflags "$ldflags" -o "$BIN/" "${pkgs[@]}" )
  for c in "${cmds[@]}"; do stamp "$c" "$K8S_VERSION"; done
  log "kubernetes: built in $((SECONDS - t0)) s"
}

build_kwok() {
  up_to_date kwok "$KWOK_VERSION" && { log "kwok $KWOK_VERSION: cached"; return; }
  log "kwok $KWOK_VERSION: building"
  local t0=$SECONDS
  ( wrapper "$SRC/kwok"
    go get "sigs.k8s.io/kwok@$KWOK_VERSION"
    go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
      -o "$BIN/" sigs.k8s.io/kwok/cmd/kwok )
  stamp kwok "$KWOK_VERSION"
  log "kwok: built in $((SECONDS - t0)) s"
}

build_helm() {
  up_to_date helm "$HELM_VERSION" && { log "helm $HELM_VERSION: cached"; return; }
  log "helm $HELM_VERSION: building"
  local t0=$SECONDS
  ( wrapper "$SRC/helm"
    go get "helm.sh/helm/v3@$HELM_VERSION"
    go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      -o "$BIN/helm" helm.sh/helm/v3/cmd/helm )
  stamp helm "$HELM_VERSION"
  log "helm: built in $((SECONDS - t0)) s"
}

build_kstatus() {
  # The stamp includes the helper's own source, so editing hack/kstatus/main.go rebuilds it.
  local here version
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  version="$CLI_UTILS_VERSION $(sha256sum "$here/kstatus/main.go" | cut -c1-12)"
  up_to_date kstatus "$version" && { log "kstatus $CLI_UTILS_VERSION: cached"; return; }
  log "kstatus $CLI_UTILS_VERSION: building"
  local t0=$SECONDS
  ( wrapper "$SRC/kstatus"
    cp "$here/kstatus/main.go" .
    go get "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION"
    go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$BIN/kstatus" . )
  stamp kstatus "$version"
  log "kstatus: built in $((SECONDS - t0)) s"
}

build_lws() {
  # The CRD travels with the binary: same version, same stamp.
  up_to_date lws-manager "$LWS_VERSION" && [[ -f "$BIN/lws-crds/.version" ]] \
    && [[ "$(cat "$BIN/lws-crds/.version")" == "$LWS_VERSION" ]] \
    && { log "lws $LWS_VERSION: cached"; return; }
  log "lws $LWS_VERSION: building"
  local t0=$SECONDS
  ( wrapper "$SRC/lws"
    go get "sigs.k8s.io/lws@$LWS_VERSION"
    go build -trimpath -ldflags "-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion=$LWS_VERSION" \
      -o "$BIN/lws-manager" sigs.k8s.io/lws/cmd
    dir=$(go list -m -f '{{.Dir}}' "sigs.k8s.io/lws")
    rm -rf "$BIN/lws-crds" && mkdir -p "$BIN/lws-crds"
    cp "$dir"/config/crd/bases/*.yaml "$BIN/lws-crds/"
    chmod u+w "$BIN"/lws-crds/*.yaml
    echo "$LWS_VERSION" >"$BIN/lws-crds/.version" )
  stamp lws-manager "$LWS_VERSION"
  log "lws: built in $((SECONDS - t0)) s"
}

build_prometheus() {
  up_to_date prometheus "$PROMETHEUS_VERSION" && { log "prometheus $PROMETHEUS_VERSION: cached"; return; }
  log "prometheus $PROMETHEUS_VERSION: building (kubernetes service discovery only)"
  local t0=$SECONDS
  ( wrapper "$SRC/prometheus"
    go get "github.com/prometheus/prometheus@$PROMETHEUS_VERSION"
    # Upstream's plugins/ files are guarded by these tags: every SD but kubernetes is left out.
    go build -trimpath -tags "remove_all_sd enable_kubernetes_sd" \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
      -o "$BIN/prometheus" github.com/prometheus/prometheus/cmd/prometheus )
  stamp prometheus "$PROMETHEUS_VERSION"
  log "prometheus: built in $((SECONDS - t0)) s"
}

build_prometheus_adapter() {
  up_to_date prometheus-adapter "$PROMETHEUS_ADAPTER_VERSION" && {
    log "prometheus-adapter $PROMETHEUS_ADAPTER_VERSION: cached"; return; }
  log "prometheus-adapter $PROMETHEUS_ADAPTER_VERSION: building"
  local t0=$SECONDS
  ( wrapper "$SRC/prometheus-adapter"
    go get "sigs.k8s.io/prometheus-adapter@$PROMETHEUS_ADAPTER_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$BIN/prometheus-adapter" sigs.k8s.io/prometheus-adapter/cmd/adapter )
  stamp prometheus-adapter "$PROMETHEUS_ADAPTER_VERSION"
  log "prometheus-adapter: built in $((SECONDS - t0)) s"
}

start=$SECONDS
build_etcd
build_kwok
build_kubernetes
build_helm
build_kstatus
if want_addon metrics; then
  build_prometheus
  build_prometheus_adapter
fi
if want_addon lws; then
  build_lws
fi
log "all binaries ready in $BIN ($((SECONDS - start)) s)"
echo "$BIN"
