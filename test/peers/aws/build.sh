#!/usr/bin/env bash
# Builds the peers of test/aws-provider.test.ts into a cache folder outside the
# repository, reusing what is already there:
#   - the AWS Secrets Store CSI provider (aws/secrets-store-csi-driver-provider-aws,
#     release 3.1.1), from the Go module proxy by commit (its release tags are
#     not Go semver tags, so the proxy lists no versions):
#       <dir>/bin/secrets-store-csi-driver-provider-aws
#   - moto[server] 5.2.5 (a local AWS API server; brings boto3) from PyPI in a venv:
#       <dir>/venv/bin/moto_server, <dir>/venv/bin/python
# Prints <dir> on its last line.
#
#   --check              only print <dir> if both are built, else exit 4 (6 with
#                        the recorded refusal when the proxy refused the provider)
#   SSCSI_PEERS_CACHE    default ~/.cache/secrets-store-csi-peers
#
# Exit codes: 3 Go or Python (3.10+ with venv) is missing, 4 (--check) not built,
# 6 the Go module proxy refuses the provider (recorded in <dir>/registry-refusal.txt).
set -euo pipefail
# shellcheck source=../peer-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../peer-build.sh"

PROVIDER_VERSION=3.1.1
PROVIDER_COMMIT=5f47771b11645e19c11057dc690d3012f7a2345d
PROVIDER_MOD=github.com/aws/secrets-store-csi-driver-provider-aws
MOTO_VERSION=5.2.5

CACHE=${SSCSI_PEERS_CACHE:-$HOME/.cache/secrets-store-csi-peers}
DIR=$CACHE/aws-provider-$PROVIDER_VERSION-moto-$MOTO_VERSION
EXE=$DIR/bin/secrets-store-csi-driver-provider-aws
VENV=$DIR/venv
# Written last: a venv cut short by a failed pip install is never taken for a built one.
MOTO_DONE=$VENV/.moto-$MOTO_VERSION-installed
REFUSAL=$DIR/registry-refusal.txt

# The venv's interpreter links to the python3 it was made from: check it still runs.
moto_ok() { [ -f "$MOTO_DONE" ] && "$VENV/bin/python" -c 'import moto.server' 2>/dev/null; }
built() { [ -x "$EXE" ] && moto_ok; }

if [ "${1:-}" = "--check" ]; then
  built || refused_or_missing "$REFUSAL"
  echo "$DIR"; exit 0
fi
if built; then echo "$DIR"; exit 0; fi

log() { echo "[aws] $*" >&2; }
mkdir -p "$DIR/bin"

if [ ! -x "$EXE" ]; then
  require_go 26 "the AWS provider test builds $PROVIDER_MOD@${PROVIDER_COMMIT:0:12} ($PROVIDER_VERSION) from the Go module proxy"
  from_go_proxy "$PROVIDER_MOD@${PROVIDER_COMMIT:0:12}" "$REFUSAL"
  tmp=$(mktemp -d "$DIR/bin/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Into $tmp first, then moved into place atomically, so a half-written
  # binary is never taken for a built one.
  GOBIN=$tmp go install -ldflags "-s -w" "$PROVIDER_MOD@${PROVIDER_COMMIT:0:12}" >&2
  log "built $PROVIDER_MOD@${PROVIDER_COMMIT:0:12} ($PROVIDER_VERSION) from the Go module proxy"
  mv "$tmp/secrets-store-csi-driver-provider-aws" "$EXE"
fi

if ! moto_ok; then
  py=$(command -v python3 || true)
  if [ -z "$py" ] || ! "$py" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    echo "python3 (3.10+, with the venv and ensurepip modules; Debian: python3-venv) is needed: the AWS provider test runs moto[server]==$MOTO_VERSION from PyPI in a venv" >&2
    exit 3
  fi
  log "installing moto[server]==$MOTO_VERSION into $VENV"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  "$VENV/bin/python" -c 'import boto3, moto.server' >&2
  touch "$MOTO_DONE"
fi

log "ready: provider $PROVIDER_VERSION, moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
echo "$DIR"
