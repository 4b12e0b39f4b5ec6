#!/usr/bin/env bash
# No build reuses what another configuration built: after a wheel built with
# c-ares, a wheel built from the same checkout where pkg-config finds libuv
# only must not carry gevent_c._ares (it did when build/ was shared).
#
# usage: tests/packaging/test_build_config.sh
#   PYTHON: an interpreter with pip (make test-build-config passes .venv's)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
fail() { echo "test_build_config: FAIL: $*" >&2; exit 1; }
pkg-config --exists libcares || fail "needs c-ares' pkg-config file (Debian: libc-ares-dev)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gevent_c-config.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/uv-only"
cp "$(pkg-config --variable=pcfiledir libuv)/libuv.pc" "$WORK/uv-only/"

extensions() {   # the extension modules in a wheel
    "$PYTHON" -c 'import sys, zipfile
print(" ".join(sorted(n.split("/")[-1].split(".")[0] for n in zipfile.ZipFile(sys.argv[1]).namelist()
                      if n.endswith(".so") and n.startswith("gevent_c/"))))' "$1"
}

cd "$REPO"
"$PYTHON" -m pip wheel -q --no-deps --wheel-dir "$WORK/with" .
got="$(extensions "$WORK"/with/*.whl)"
[ "$got" = "_ares _hub" ] || fail "with c-ares: the wheel has [$got], not [_ares _hub]"
PKG_CONFIG_LIBDIR="$WORK/uv-only" "$PYTHON" -m pip wheel -q --no-deps --wheel-dir "$WORK/without" .
got="$(extensions "$WORK"/without/*.whl)"
[ "$got" = "_hub" ] || fail "without c-ares: the wheel has [$got], not [_hub]"
echo "test_build_config: OK (with c-ares: _ares _hub; without: _hub)"
