#!/usr/bin/env bash
# Builds kubelet and kube-scheduler (the same Kubernetes version as the
# control plane) from the Go module proxy into the peers cache, for the
# real-kubelet suite (test/kubelet-e2e.test.ts). Reuses what is already
# there. Prints the bin directory on its last line; exits 6 when the proxy
# refuses the module (the suite is then skipped, naming the refusal).
#
#   SSCSI_PEERS_CACHE (default ~/.cache/secrets-store-csi-peers)
#   --check   only report: path if built, else the recorded refusal (6) or 4
set -euo pipefail
# shellcheck source=../peer-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../peer-build.sh"

K8S_VERSION=${K8S_VERSION:-v1.34.4}
STAGING_VERSION=${STAGING_VERSION:-v0.34.4}
CACHE=${SSCSI_PEERS_CACHE:-$HOME/.cache/secrets-store-csi-peers}
DIR=$CACHE/kubelet-$K8S_VERSION
BIN=$DIR/bin
REFUSAL=$DIR/refused

built() { [ -x "$BIN/kubelet" ] && [ -x "$BIN/kube-scheduler" ]; }
if built; then echo "$BIN"; exit 0; fi
[ "${1:-}" = "--check" ] && refused_or_missing "$REFUSAL"

require_go 26 "the real-kubelet tests build kubelet from the Go module proxy"
mkdir -p "$BIN" "$DIR/src"
cd "$DIR/src"
[ -f go.mod ] || go mod init example.invalid/kubelet-bin >/dev/null 2>&1
from_go_proxy "k8s.io/kubernetes@$K8S_VERSION" "$REFUSAL"
# k8s.io/kubernetes maps its staging modules to ./staging/...; a module
# outside its tree takes them from the proxy at the matching version.
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
for m in $(sed -n 's/^[[:space:]]*\(k8s\.io\/[^ ]*\) => \.\/staging\/.*/\1/p' "$modfile"); do
  go mod edit -replace="$m=$m@$STAGING_VERSION"
done
echo "[kubelet] building kubelet and kube-scheduler $K8S_VERSION" >&2
go get "k8s.io/kubernetes/cmd/kubelet@$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" >&2
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldf="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
for b in kubelet kube-scheduler; do
  [ -x "$BIN/$b" ] && continue
  go build -ldflags "$ldf" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b" >&2
  mv "$BIN/$b.tmp" "$BIN/$b"
done
echo "$BIN"
