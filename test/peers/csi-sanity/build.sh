#!/usr/bin/env bash
# Builds csi-sanity (github.com/kubernetes-csi/csi-test, the CSI conformance
# suite) from the Go module proxy into a cache folder outside the repository:
#   $SSCSI_PEERS_CACHE/csi-sanity-<version>/bin/csi-sanity
# Reuses it when it is already there. Prints the binary's path on its last line.
#
#   --check            only print the path if it is built, else exit 4
#   SSCSI_PEERS_CACHE  default ~/.cache/secrets-store-csi-peers
#   CSI_TEST_VERSION   default v5.6.0 (CSI spec 1.13; v5.4.0 is the oldest
#                      tested, the first with spec 1.12)
# Exit codes: 3 Go is missing or too old, 4 (--check) not built.
set -euo pipefail
# shellcheck source=../peer-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../peer-build.sh"

CSI_TEST_VERSION=${CSI_TEST_VERSION:-v5.6.0}
CACHE=${SSCSI_PEERS_CACHE:-$HOME/.cache/secrets-store-csi-peers}
BIN=$CACHE/csi-sanity-$CSI_TEST_VERSION/bin
EXE=$BIN/csi-sanity

done_if_built "$EXE" "${1:-}"

require_go 25 "the csi-sanity test builds csi-sanity $CSI_TEST_VERSION from the Go module proxy"

echo "[csi-sanity] building github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION" >&2
mkdir -p "$BIN"
tmp=$(mktemp -d "$BIN/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# go install has no -o: install into a private GOBIN, then move into place
# atomically, so a half-written binary is never taken for a built one.
GOBIN=$tmp go install -ldflags "-s -w -X main.VERSION=$CSI_TEST_VERSION" \
  "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION" >&2
mv "$tmp/csi-sanity" "$EXE"
echo "$EXE"
