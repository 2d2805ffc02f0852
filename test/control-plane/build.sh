#!/usr/bin/env bash
# Builds the real control-plane binaries the Kubernetes tests run against,
# from the Go module proxy, into a cache folder outside the repository:
#   etcd (3.6.x), kube-apiserver and kube-controller-manager (1.34.x).
# Reuses what is already there. Prints the bin directory on its last line.
#
#   SSCSI_PEERS_CACHE (default ~/.cache/secrets-store-csi-peers)
set -euo pipefail
# shellcheck source=../peers/peer-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../peers/peer-build.sh"

K8S_VERSION=${K8S_VERSION:-v1.34.4}
STAGING_VERSION=${STAGING_VERSION:-v0.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CACHE=${SSCSI_PEERS_CACHE:-$HOME/.cache/secrets-store-csi-peers}
BIN=$CACHE/control-plane-$K8S_VERSION-etcd-$ETCD_VERSION/bin
WORK=$CACHE/control-plane-$K8S_VERSION-etcd-$ETCD_VERSION/src

if [ "${1:-}" = "--check" ]; then
  # Only report: the bin dir if every binary is there, else exit 4.
  for b in etcd kube-apiserver kube-controller-manager; do [ -x "$BIN/$b" ] || exit 4; done
  echo "$BIN"; exit 0
fi

require_go 26 "the Kubernetes tests build etcd and kube-apiserver from the Go module proxy"
mkdir -p "$BIN" "$WORK"

log() { echo "[control-plane] $*" >&2; }

if [ ! -x "$BIN/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  d=$WORK/etcd; mkdir -p "$d"; cd "$d"
  [ -f go.mod ] || go mod init example.invalid/etcd-bin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ]; then
  log "building kube-apiserver and kube-controller-manager $K8S_VERSION"
  d=$WORK/kube; mkdir -p "$d"; cd "$d"
  [ -f go.mod ] || go mod init example.invalid/kube-bins >/dev/null 2>&1
  # k8s.io/kubernetes maps its staging modules to ./staging/...; a module
  # outside its tree must take them from the proxy at the matching version.
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  for m in $(sed -n 's/^[[:space:]]*\(k8s\.io\/[^ ]*\) => \.\/staging\/.*/\1/p' "$modfile"); do
    go mod edit -replace="$m=$m@$STAGING_VERSION"
  done
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" >&2
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  go build -ldflags "$ldf" -o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
  mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
  go build -ldflags "$ldf" -o "$BIN/kube-controller-manager.tmp" k8s.io/kubernetes/cmd/kube-controller-manager >&2
  mv "$BIN/kube-controller-manager.tmp" "$BIN/kube-controller-manager"
fi
echo "$BIN"
