#!/usr/bin/env bash
# Build gevent_c with -fsanitize=address,undefined in a scratch copy of the
# repository and run the whole pytest suite there with the ASan runtime
# preloaded into CPython.  The in-place (normal) build in the repository is
# never touched, so `make test` afterwards still uses the normal build.
#
# usage: tests/reliability/asan.sh [pytest args...]
#   ASAN_DIR=/path   scratch copy (default: build/asan-tree under the repo)
#   PYTHON=python3  (with greenlet, setuptools and pytest: make test-asan passes .venv's)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
ASAN_DIR="${ASAN_DIR:-$REPO/build/asan-tree}"

LIBASAN="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$LIBASAN" ] || [ "$LIBASAN" = libasan.so ]; then
    echo "asan.sh: gcc's libasan.so not found (Debian: apt-get install gcc)" >&2
    exit 1
fi

if [ "${ASAN_REUSE:-0}" = 1 ] && ls "$ASAN_DIR"/gevent_c/_hub*.so >/dev/null 2>&1; then
    echo "asan.sh: ASAN_REUSE=1: reusing the build in $ASAN_DIR (tests and Python files refreshed)"
    tar -C "$REPO" --exclude='./build' --exclude='./.git' --exclude='./.compat-venv' --exclude='./.venv' --exclude='./.bench-venv' --exclude='./dist' \
        --exclude='*.so' --exclude='__pycache__' --exclude='./src' \
        -cf - tests gevent_c | tar -C "$ASAN_DIR" -xf -
    SKIP_BUILD=1
else
echo "asan.sh: copying the tree to $ASAN_DIR"
rm -rf "$ASAN_DIR"
mkdir -p "$ASAN_DIR"
# Sources, tests and the Python package only; no build products, no venvs.
tar -C "$REPO" --exclude='./build' --exclude='./.git' --exclude='./.compat-venv' --exclude='./.venv' --exclude='./.bench-venv' --exclude='./dist' \
    --exclude='*.so' --exclude='__pycache__' --exclude='*.egg-info' \
    --exclude='./.pytest_cache' --exclude='./docs/_build' -cf - . | tar -C "$ASAN_DIR" -xf -

# --param asan-stack=0: no stack redzones.  greenlet switches stacks by
# memcpy'ing them to and from the heap (greenlet is not ASan-aware), which
# makes every instrumented frame's redzones false positives once a greenlet
# switches; heap, global and use-after-free checks are unaffected.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
SAN_CC="$SAN --param asan-stack=0"
echo "asan.sh: building with $SAN_CC"
(
    cd "$ASAN_DIR"
    GEVENT_C_CFLAGS="$SAN_CC -g -O1" GEVENT_C_LDFLAGS="$SAN" \
        "$PYTHON" setup.py -q build_ext --inplace --force >build.log 2>&1 \
        || { cat build.log; exit 1; }
)
fi
for so in "$ASAN_DIR"/gevent_c/*.so; do
    # grep reads all of nm's output: with -q it could exit first, and under
    # pipefail nm's SIGPIPE would fail the check
    if ! nm -D "$so" | grep __asan_ >/dev/null; then
        echo "asan.sh: $so is not instrumented" >&2
        exit 1
    fi
done

LOGDIR="$ASAN_DIR/asan-logs"
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"
# Helper binaries the tests start (dnsmasq for the c-ares tests) must not
# inherit the ASan preload: dnsmasq hangs with it.  A PATH wrapper drops it.
mkdir -p "$ASAN_DIR/bin"
real_dnsmasq="$(PATH="$PATH:/usr/sbin:/sbin" command -v dnsmasq || true)"
if [ -n "$real_dnsmasq" ]; then
    printf '#!/bin/sh\nunset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS\nexec %s "$@"\n' "$real_dnsmasq" \
        >"$ASAN_DIR/bin/dnsmasq"
    chmod +x "$ASAN_DIR/bin/dnsmasq"
fi
export PATH="$ASAN_DIR/bin:$PATH"
# detect_leaks=0: CPython itself does not free everything at exit; leak
# coverage comes from `make test-valgrind`.  log_path: every process
# (forked children and run_py subprocesses included, they inherit the
# environment) writes its report to its own file, so a report in a child
# whose exit status a test does not check is still seen below.
# libstdc++ too: greenlet is C++ and throws C++ exceptions internally; ASan's
# __cxa_throw interceptor needs the real one resolvable at start-up, else it
# aborts with 'CHECK failed: ... real___cxa_throw != 0'.
LIBSTDCXX="$(gcc -print-file-name=libstdc++.so.6)"
export LD_PRELOAD="$LIBASAN:$LIBSTDCXX${LD_PRELOAD:+:$LD_PRELOAD}"
# greenlet's own stack copies (memcpy from an uninstrumented library): not ours.
SUPP="$ASAN_DIR/asan.supp"
printf 'interceptor_via_lib:_greenlet\n' >"$SUPP"
export ASAN_OPTIONS="suppressions=$SUPP:detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0:log_path=$LOGDIR/asan:print_cmdline=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$LOGDIR/ubsan"
# Python objects from malloc, so ASan sees their use-after-free/overflows too.
export PYTHONMALLOC=malloc
export PYTHONFAULTHANDLER=1

cd "$ASAN_DIR"
# The instrumented build, not the one pip installed: first on the path for
# pytest and for every child the tests start.
export PYTHONPATH="$ASAN_DIR${PYTHONPATH:+:$PYTHONPATH}"
set +e
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
reports=$(ls "$LOGDIR" 2>/dev/null | wc -l)
if [ "$reports" != 0 ]; then
    echo "asan.sh: $reports sanitizer report(s) in $LOGDIR:" >&2
    for f in "$LOGDIR"/*; do echo "=== $f" >&2; cat "$f" >&2; done
    [ $rc = 0 ] && rc=1
fi
if [ $rc = 0 ]; then echo "asan.sh: OK, no sanitizer reports"; fi
exit $rc
