#!/usr/bin/env bash
# Builds upstream's e2e provider (sigs.k8s.io/secrets-store-csi-driver/test/e2eprovider,
# build tag e2e) as it was at the driver's v1.6.0 tag, into a cache folder
# outside the repository. Reuses what is already there. Prints the binary's
# path on its last line.
#
#   --check            print the binary's path if it is built, else exit 4 (6 with
#                      the recorded refusal when the proxy refused the module)
#   SSCSI_PEERS_CACHE  (default ~/.cache/secrets-store-csi-peers)
#
# The e2e provider is a nested module with `replace sigs.k8s.io/secrets-store-csi-driver => ../..`
# and no tag of its own, so it can only be fetched from the Go module proxy by
# the pseudo-version of the v1.6.0 commit (it is not inside the main module's
# zip: nested modules are left out). A wrapper module requires it, and
# replaces the main module (which the e2e provider requires as
# v0.0.0-00010101000000-000000000000) with sigs.k8s.io/secrets-store-csi-driver
# v1.6.0 from the proxy.
#
# Exit codes: 3 Go is missing, 4 not built (--check), 6 the Go module proxy
# refuses the e2e provider's module (recorded in <dir>/registry-refusal.txt).
set -euo pipefail
# shellcheck source=../peer-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../peer-build.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

UPSTREAM_VERSION=v1.6.0
UPSTREAM_COMMIT=4960f9637c51ad9cb9ef264481bc6d9a98bf1f1c
# v0.0.0-<commit time in UTC>-<12 hex>: the commit of the v1.6.0 tag, 2026-04-29T16:17:26Z.
E2E_PSEUDO_VERSION=v0.0.0-20260429161726-${UPSTREAM_COMMIT:0:12}
MAIN_MOD=sigs.k8s.io/secrets-store-csi-driver
E2E_MOD=$MAIN_MOD/test/e2eprovider

CACHE=${SSCSI_PEERS_CACHE:-$HOME/.cache/secrets-store-csi-peers}
DIR=$CACHE/e2e-provider-$UPSTREAM_VERSION
BIN=$DIR/bin/e2e-provider
WORK=$DIR/src
REFUSAL=$DIR/registry-refusal.txt

if [ "${1:-}" = "--check" ] && [ ! -x "$BIN" ]; then refused_or_missing "$REFUSAL"; fi
done_if_built "$BIN"

require_go 26 "the e2e provider test builds upstream's e2e provider from the Go module proxy"
log() { echo "[e2e-provider] $*" >&2; }

rm -rf "$WORK"
mkdir -p "$WORK" "$DIR/bin"
cd "$WORK"
go mod init example.invalid/e2e-provider-bin >/dev/null 2>&1
go mod edit -replace="$MAIN_MOD=$MAIN_MOD@$UPSTREAM_VERSION"

from_go_proxy "$E2E_MOD@$E2E_PSEUDO_VERSION" "$REFUSAL"
log "$E2E_MOD@$E2E_PSEUDO_VERSION from the Go module proxy"
go mod edit -require="$E2E_MOD@$E2E_PSEUDO_VERSION"

# monis.app/mlog (a logging helper; the e2e provider calls only mlog.Fatal, on a
# startup error) is not served by every proxy. When it is refused, our
# stand-in (test/peers/mlog-standin, shared with the upstream driver build) is used.
if ! go mod download -json "monis.app/mlog@v0.0.4" >/dev/null 2>&1; then
  log "the Go module proxy does not serve monis.app/mlog@v0.0.4: using our stand-in"
  cp -R "$HERE/../mlog-standin" "$WORK/mlog-standin"
  go mod edit -replace="monis.app/mlog=./mlog-standin"
fi

# Requirements and go.sum from the e2e provider's own go.mod (tag e2e: every file carries it).
GOFLAGS="$GOFLAGS -mod=mod" go list -tags e2e -deps "$E2E_MOD" >/dev/null
go build -tags e2e -ldflags "-s -w" -o "$BIN.tmp" "$E2E_MOD"
mv "$BIN.tmp" "$BIN"
log "built: $(go version -m "$BIN" | grep -E 'secrets-store-csi-driver|mlog' | tr -s '\t\n' '  ')"
echo "$BIN"
