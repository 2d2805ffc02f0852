#!/usr/bin/env bash
# Builds the peers of test/aws-provider.test.ts into a cache folder outside the
# repository, reusing what is already there:
#   - the AWS Secrets Store CSI provider (aws/secrets-store-csi-driver-provider-aws,
#     release 3.1.1), by commit (sources below):
#       <dir>/bin/secrets-store-csi-driver-provider-aws
#   - moto[server] 5.2.5 (a local AWS API server; brings boto3) from PyPI in a venv:
#       <dir>/venv/bin/moto_server, <dir>/venv/bin/python
# Prints <dir> on its last line.
#
#   --check              only print <dir> if both are built, else exit 4
#   SSCSI_PEERS_CACHE    default ~/.cache/secrets-store-csi-peers
#   SSCSI_AWS_PROVIDER_GIT a git directory (bare or not) of aws/secrets-store-csi-driver-provider-aws
#                        that has the 3.1.1 commit; used only when the Go module proxy
#                        does not serve the provider (see below)
#
# The provider's release tags (3.1.1) are not Go semver tags, so the proxy lists
# no versions. Sources, in order:
#   1. the Go module proxy, by commit (go install MOD@<commit>);
#   2. `git archive` of that commit from $SSCSI_AWS_PROVIDER_GIT, built as the main
#      module with its own go.mod and go.sum (dependencies from the proxy).
# Exit codes: 3 Go or Python (3.10+ with venv) is missing, 4 (--check) not built,
# 5 no source for the provider.
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

# The venv's interpreter links to the python3 it was made from: check it still runs.
moto_ok() { [ -f "$MOTO_DONE" ] && "$VENV/bin/python" -c 'import moto.server' 2>/dev/null; }
built() { [ -x "$EXE" ] && moto_ok; }

if [ "${1:-}" = "--check" ]; then
  built || exit 4
  echo "$DIR"; exit 0
fi
if built; then echo "$DIR"; exit 0; fi

log() { echo "[aws] $*" >&2; }
mkdir -p "$DIR/bin"

if [ ! -x "$EXE" ]; then
  require_go 26 "the AWS provider test builds $PROVIDER_MOD@${PROVIDER_COMMIT:0:12} ($PROVIDER_VERSION) from the Go module proxy or a git directory of its repository"
  tmp=$(mktemp -d "$DIR/bin/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Both ways build into $tmp first, then move into place atomically, so a
  # half-written binary is never taken for a built one.
  if proxy_out=$(GOBIN=$tmp go install -ldflags "-s -w" "$PROVIDER_MOD@${PROVIDER_COMMIT:0:12}" 2>&1); then
    log "built $PROVIDER_MOD@${PROVIDER_COMMIT:0:12} ($PROVIDER_VERSION) from the Go module proxy"
  else
    log "the Go module proxy does not serve $PROVIDER_MOD@${PROVIDER_COMMIT:0:12}: $(echo "$proxy_out" | tr '\n' ' ' | head -c 400)"
    git_dir=${SSCSI_AWS_PROVIDER_GIT:-}
    if [ -z "$git_dir" ] || ! git -C "$git_dir" cat-file -e "$PROVIDER_COMMIT^{commit}" 2>/dev/null; then
      echo "no source for the AWS provider: the Go module proxy refuses $PROVIDER_MOD@${PROVIDER_COMMIT:0:12}," \
        "and SSCSI_AWS_PROVIDER_GIT does not name a git directory of aws/secrets-store-csi-driver-provider-aws" \
        "that has commit $PROVIDER_COMMIT ($PROVIDER_VERSION)" >&2
      exit 5
    fi
    log "building $PROVIDER_MOD from $git_dir at $PROVIDER_COMMIT ($PROVIDER_VERSION)"
    git -C "$git_dir" archive --format=tar "$PROVIDER_COMMIT" | tar -x -C "$tmp"
    # Its go.sum pins every dependency; the sums are still checked against the checksum database.
    (cd "$tmp" && go build -ldflags "-s -w" -o "$tmp/secrets-store-csi-driver-provider-aws" . >&2)
  fi
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
