# Sourced by the peer builds.

# done_if_built BIN [--check]: prints BIN and exits 0 when it is built;
# otherwise exits 4 under --check (only asked whether it is built), else returns.
done_if_built() {
  if [ -x "$1" ]; then echo "$1"; exit 0; fi
  if [ "${2:-}" = "--check" ]; then exit 4; fi
}

# require_go MINOR PURPOSE: Go 1.MINOR or newer on
# the PATH, building with that toolchain only (no downloads of another); else
# a message naming PURPOSE and exit 3, the builds' "Go is missing" code.
require_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "go is not installed: $2 (install Go 1.$1+)" >&2
    exit 3
  fi
  export GOTOOLCHAIN=local GOFLAGS=-trimpath
  local gover minor
  gover=$(go env GOVERSION)   # e.g. go1.26.8
  minor=$(echo "$gover" | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
  if [ -z "$minor" ] || [ "$minor" -lt "$1" ]; then
    echo "$gover is too old (Go 1.$1+ is needed, install a newer Go): $2" >&2
    exit 3
  fi
}

# Exit code of a build whose peer its registry refuses to serve (not a
# failure of the build: the peer's test is then skipped, naming the refusal).
REFUSED=6

# refused_or_missing REFUSAL_FILE: for --check when the peer is not built:
# prints the refusal the last build recorded and exits 6, else exits 4.
refused_or_missing() {
  if [ -f "$1" ]; then cat "$1" >&2; exit "$REFUSED"; fi
  exit 4
}

# from_go_proxy MOD@VERSION REFUSAL_FILE: downloads MOD@VERSION from the Go
# module proxy into the module cache and forgets an earlier refusal. When the
# proxy refuses it (403, 404, 410), writes "the Go module proxy refuses
# MOD@VERSION (its error)" to REFUSAL_FILE, prints that and exits 6; any
# other error (network, toolchain) exits 1.
from_go_proxy() {
  local out err
  if out=$(go mod download -json "$1" 2>&1); then
    rm -f "$2"
    return 0
  fi
  # The JSON's "Error" string, without the "MOD@VERSION: " it starts with, on one line.
  err=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",*$/\1/p' | sed 's/\\[nt]/ /g; s/  */ /g')
  [ -n "$err" ] || err=$(printf '%s' "$out" | tr '\n' ' ')
  err=${err#"$1: "}
  if printf '%s' "$err" | grep -qE '\b(403 Forbidden|404 Not Found|410 Gone)\b'; then
    mkdir -p "$(dirname "$2")"
    echo "the Go module proxy refuses $1 ($err)" >"$2"
    cat "$2" >&2
    exit "$REFUSED"
  fi
  echo "could not fetch $1 from the Go module proxy: $err" >&2
  exit 1
}
