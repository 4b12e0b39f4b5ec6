#!/usr/bin/env bash
# Install a gevent_c wheel into a fresh venv where pkg-config finds nothing
# (so nothing can be compiled against the system's libuv or c-ares), check
# with ldd that its extensions load the libraries bundled in the wheel
# (gevent_c.libs/), and run the whole test suite against the installed wheel
# from a directory where the checkout is not importable.
#
# usage: tests/packaging/test_wheel.sh WHEEL [pytest args...]
#   PYTHON: the interpreter the venv is made from (the wheel's CPython version)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
[ $# -ge 1 ] && [ -f "$1" ] || { echo "usage: $0 WHEEL [pytest args]" >&2; exit 2; }
WHEEL="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
fail() { echo "test_wheel: FAIL: $*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gevent_c-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/empty"
export PKG_CONFIG_LIBDIR="$WORK/empty" PKG_CONFIG_PATH=""
for lib in libuv libcares; do
    if pkg-config --exists "$lib" 2>/dev/null; then
        fail "pkg-config still finds $lib with PKG_CONFIG_LIBDIR=$PKG_CONFIG_LIBDIR"
    fi
done

echo "test_wheel: $(basename "$WHEEL") into a fresh venv from $PYTHON (pkg-config finds nothing)"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
# --only-binary: the wheel and its dependencies install as they are, nothing is built.
"$VPY" -m pip install -q --only-binary=:all: "$WHEEL" pytest pytest-timeout hypothesis

cd "$WORK"   # not the checkout: its gevent_c/ must not be importable
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
for pair in _hub:libuv _ares:libcares; do
    mod="${pair%%:*}" lib="${pair##*:}"
    so="$("$VPY" -c "import gevent_c.$mod as m; print(m.__file__)")"
    case "$so" in
        "$SITE"/gevent_c/*) ;;
        *) fail "gevent_c.$mod comes from $so, not from the installed wheel in $SITE" ;;
    esac
    deps="$(ldd "$so")"
    resolved="$(printf '%s\n' "$deps" | awk -v lib="$lib" '$1 ~ "^" lib "[-.]" {print $3}')"
    [ -n "$resolved" ] || { printf '%s\n' "$deps" >&2; fail "ldd: $so does not load $lib"; }
    for path in $resolved; do
        case "$(realpath "$path")" in
            "$SITE"/gevent_c.libs/*) echo "test_wheel: $(basename "$so") loads $path" ;;
            *) printf '%s\n' "$deps" >&2; fail "$so loads $lib from $path, not from gevent_c.libs/" ;;
        esac
    done
done

echo "test_wheel: the test suite against $SITE/gevent_c"
GEVENT_C_EXPECT_DIR="$SITE/gevent_c" \
    "$VPY" -X dev -m pytest -q -c "$REPO/pyproject.toml" --rootdir "$REPO" \
    "$REPO/tests" "$REPO/docs" "$@" || fail "pytest exited $?"
echo "test_wheel: OK"
