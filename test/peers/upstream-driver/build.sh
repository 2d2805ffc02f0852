#!/usr/bin/env bash
# Builds the upstream Secrets Store CSI driver (sigs.k8s.io/secrets-store-csi-driver,
# cmd/secrets-store-csi-driver) at v1.6.0 from the Go module proxy, into a cache
# folder outside the repository, for the side-by-side test
# (test/upstream-side-by-side.test.ts). Reuses what is already there. Prints the
# binary's path on its last line.
#
#   --check            print the binary's path if it is built, else exit 4
#   SSCSI_PEERS_CACHE  (default ~/.cache/secrets-store-csi-peers)
#
# A throwaway wrapper module requires the driver module at v1.6.0 and builds its
# main package; nothing is taken from a git checkout. pkg/version.BuildVersion is
# set to v1.6.0 (upstream's default is "local-dev"), so GetPluginInfo reports the
# real version.
#
# Exit codes: 3 Go is missing, 4 not built (--check).
set -euo pipefail
# shellcheck source=../peer-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../peer-build.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

UPSTREAM_VERSION=v1.6.0
MAIN_MOD=sigs.k8s.io/secrets-store-csi-driver
MAIN_PKG=$MAIN_MOD/cmd/secrets-store-csi-driver
# The monis.app/mlog version that upstream's go.mod requires at v1.6.0.
MLOG_VERSION=v0.0.2

CACHE=${SSCSI_PEERS_CACHE:-$HOME/.cache/secrets-store-csi-peers}
DIR=$CACHE/upstream-driver-$UPSTREAM_VERSION
BIN=$DIR/bin/secrets-store-csi-driver
WORK=$DIR/src

done_if_built "$BIN" "${1:-}"

require_go 26 "the side-by-side test builds the upstream driver $UPSTREAM_VERSION from the Go module proxy"
log() { echo "[upstream-driver] $*" >&2; }

rm -rf "$WORK"
mkdir -p "$WORK" "$DIR/bin"
cd "$WORK"
go mod init example.invalid/upstream-driver-bin >/dev/null 2>&1
go mod edit -require="$MAIN_MOD@$UPSTREAM_VERSION"

# monis.app/mlog (a small logging-setup library) is refused by some proxies (403).
# Then our stand-in is used (test/peers/mlog-standin, shared with the e2e
# provider build): just the identifiers upstream calls; verbosity still comes
# from klog's own -v flag, and it always logs in klog's text format.
if ! go mod download -json "monis.app/mlog@$MLOG_VERSION" >/dev/null 2>&1; then
  log "the Go module proxy does not serve monis.app/mlog@$MLOG_VERSION: using a stand-in"
  cp -R "$HERE/../mlog-standin" "$WORK/mlog-standin"
  go mod edit -replace="monis.app/mlog=./mlog-standin"
fi

# Requirements and go.sum from upstream's go.mod.
GOFLAGS="$GOFLAGS -mod=mod" go list -deps "$MAIN_PKG" >/dev/null
go build -ldflags "-s -w -X $MAIN_MOD/pkg/version.BuildVersion=$UPSTREAM_VERSION" -o "$BIN.tmp" "$MAIN_PKG"
mv "$BIN.tmp" "$BIN"
log "built: $(go version -m "$BIN" | grep -E 'secrets-store-csi-driver|mlog' | tr -s '\t\n' '  ')"
echo "$BIN"
