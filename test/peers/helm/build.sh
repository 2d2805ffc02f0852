#!/usr/bin/env bash
# Builds Helm (helm.sh/helm, the Kubernetes package manager) from the Go module
# proxy into a cache folder outside the repository, for the chart's tests:
#   $SSCSI_PEERS_CACHE/helm-<version>/bin/helm
# Reuses it when it is already there. Prints the binary's path on its last line.
#
#   --check            only print the path if it is built, else exit 4
#   SSCSI_PEERS_CACHE  default ~/.cache/secrets-store-csi-peers
#   HELM_VERSION       default v4.3.2 (a v3.x such as v3.21.4 works too)
# Exit codes: 3 Go is missing or too old, 4 (--check) not built.
set -euo pipefail
# shellcheck source=../peer-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../peer-build.sh"

HELM_VERSION=${HELM_VERSION:-v4.3.2}
CACHE=${SSCSI_PEERS_CACHE:-$HOME/.cache/secrets-store-csi-peers}
BIN=$CACHE/helm-$HELM_VERSION/bin
EXE=$BIN/helm

done_if_built "$EXE" "${1:-}"

require_go 25 "the Helm chart test builds helm $HELM_VERSION from the Go module proxy"

# The module's major version is part of its path (helm.sh/helm/v4).
major=$(echo "$HELM_VERSION" | sed -n 's/^v\([0-9]*\)\..*/\1/p')
MODULE=helm.sh/helm/v$major
echo "[helm] building $MODULE/cmd/helm@$HELM_VERSION" >&2
mkdir -p "$BIN"
tmp=$(mktemp -d "$BIN/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# go install has no -o: install into a private GOBIN, then move into place
# atomically, so a half-written binary is never taken for a built one. The
# version is stamped the way Helm's own Makefile does, so `helm version` and
# charts' kubeVersion checks see the real release.
GOBIN=$tmp CGO_ENABLED=0 go install \
  -ldflags "-s -w -X $MODULE/internal/version.version=$HELM_VERSION" \
  "$MODULE/cmd/helm@$HELM_VERSION" >&2
mv "$tmp/helm" "$EXE"
echo "$EXE"
