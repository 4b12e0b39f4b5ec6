#!/usr/bin/env bash
# The test suite on every CPython 3.10-3.13 on this machine (make test-matrix).
# For each version, the first interpreter found among pyenv's versions,
# /usr/local/bin, /usr/bin and PATH gets its own venv (build/matrix/<version>),
# a non-editable install of the checkout, and the whole suite, run from
# outside the checkout against the installed package.  Prints which versions
# it found, which it skipped and why, and a summary; exits 1 if a run failed
# or no interpreter was found.
#
#   MATRIX_VERSIONS="3.10 3.11 3.12 3.13"   the versions to look for
#   MATRIX_PYTHONS="/path/python3.12 ..."   use these interpreters instead of looking
#   MATRIX_PYTEST_ARGS="-x"                 extra pytest arguments
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSIONS="${MATRIX_VERSIONS:-3.10 3.11 3.12 3.13}"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"

# "X.Y" of an interpreter if it is a CPython that can make venvs, else nothing.
probe() {
    "$1" -c 'import sys, platform, venv, ensurepip
assert platform.python_implementation() == "CPython"
print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

candidates() {   # $1 = X.Y
    local v="$1" d
    for d in $(ls -d "$PYENV_ROOT"/versions/"$v".* 2>/dev/null | sort -rV); do
        echo "$d/bin/python$v"
    done
    echo "/usr/local/bin/python$v"
    echo "/usr/bin/python$v"
    PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/shims$' | paste -sd:)" \
        command -v "python$v" 2>/dev/null || true
}

declare -a RUN_V RUN_PY
if [ -n "${MATRIX_PYTHONS:-}" ]; then
    for py in $MATRIX_PYTHONS; do
        v="$(probe "$py")" || { echo "matrix: $py: not a CPython with venv, skipped"; continue; }
        RUN_V+=("$v"); RUN_PY+=("$py")
    done
else
    for v in $VERSIONS; do
        found="" others=""
        for py in $(candidates "$v"); do
            [ -x "$py" ] || continue
            py="$(realpath "$py")"
            case " $found $others " in *" $py "*) continue ;; esac
            if [ "$(probe "$py")" != "$v" ]; then
                echo "matrix: $v: $py skipped (not a working CPython $v with the venv module;" \
                     "Debian: apt-get install python$v-venv)"
                continue
            fi
            if [ -z "$found" ]; then found="$py"; else others="$others $py"; fi
        done
        if [ -n "$found" ]; then
            echo "matrix: $v: found $found${others:+ (also found, not run:$others)}"
            RUN_V+=("$v"); RUN_PY+=("$found")
        else
            echo "matrix: $v: no interpreter found, skipped"
        fi
    done
fi
[ ${#RUN_V[@]} -gt 0 ] || { echo "matrix: no CPython in $VERSIONS found" >&2; exit 1; }

summary=() failed=0
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gevent_c-matrix.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
for i in "${!RUN_V[@]}"; do
    v="${RUN_V[$i]}" py="${RUN_PY[$i]}" venv="$REPO/build/matrix/${RUN_V[$i]}"
    t0=$(date +%s)
    echo "==== matrix: CPython $v ($py) in build/matrix/$v"
    (
        set -e
        if [ "$(cat "$venv/.python" 2>/dev/null)" != "$py" ]; then
            rm -rf "$venv"
            "$py" -m venv "$venv"
            "$venv/bin/python" -m pip install -q -U pip
            echo "$py" >"$venv/.python"
        fi
        "$venv/bin/python" -m pip install -q 'greenlet>=3' pytest pytest-timeout hypothesis
        "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$REPO"
        cd "$WORK"   # not the checkout: its gevent_c/ must not be importable
        site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
        "$venv/bin/python" -c 'import gevent_c._ares' 2>/dev/null \
            || echo "matrix: warning: CPython $v: built without c-ares" >&2
        GEVENT_C_EXPECT_DIR="$site/gevent_c" "$venv/bin/python" -X dev -m pytest -q \
            -c "$REPO/pyproject.toml" --rootdir "$REPO" "$REPO/tests" "$REPO/docs" \
            ${MATRIX_PYTEST_ARGS:-}
    )
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    if [ $rc = 0 ]; then r=passed; else r="FAILED (exit $rc)"; failed=1; fi
    summary+=("$(printf '  CPython %-5s %-8s %4d s  %s' "$v" "$r" "$dt" "$py")")
done
echo "==== matrix summary"
printf '%s\n' "${summary[@]}"
exit $failed
