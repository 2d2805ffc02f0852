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
