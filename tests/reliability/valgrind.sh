#!/usr/bin/env bash
# valgrind memcheck over tests/reliability/valgrind_workload.py (make test-valgrind).
# Fails when valgrind reports a definite leak, an invalid read/write, a bad
# free or a use of uninitialised memory whose stack goes through gevent_c
# (our .so files or our src/*.c).  CPython's own "leaks" at exit and errors
# wholly inside CPython/libc are not ours and are listed but ignored.
#
# usage: tests/reliability/valgrind.sh [N]     N: iterations per op (default 200)
#   PYTHON: an interpreter where gevent_c is installed (make test-valgrind: .venv's)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
PYEXE="$("$PYTHON" -c 'import sys; print(sys.executable)')"   # not a pyenv shim
N="${1:-200}"
LOG="${VALGRIND_LOG:-$REPO/build/valgrind.log}"
mkdir -p "$(dirname "$LOG")"
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }

cd "$REPO"
echo "valgrind.sh: memcheck of valgrind_workload.py N=$N (log: $LOG)"
set +e
PYTHONMALLOC=malloc \
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=40 --track-origins=no \
    --child-silent-after-fork=yes --log-file="$LOG" \
    "$PYEXE" tests/reliability/valgrind_workload.py "$N"
rc=$?
set -e
if [ $rc != 0 ] && ! grep -q "ERROR SUMMARY" "$LOG"; then
    echo "valgrind.sh: the workload failed (exit $rc)" >&2; tail -30 "$LOG" >&2; exit 1
fi
"$PYTHON" - "$LOG" <<'PY'
import re, sys
log = open(sys.argv[1], errors='replace').read()
ours = re.compile(r'_hub\.cpython|_ares\.cpython|\((?:_hub|waiter|loop_uv|watcher|timer|io|signal|'
                  r'misc_watchers|stat|threadpool|ares)\.c:\d+\)')
records, cur = [], []
for line in log.splitlines():
    body = re.sub(r'^==\d+== ?', '', line)
    if body.strip() == '':
        if cur:
            records.append(cur)
        cur = []
    else:
        cur.append(body)
if cur:
    records.append(cur)
kinds = re.compile(r'definitely lost|Invalid (read|write|free)|uninitialised|Mismatched free|'
                   r'overlap|Syscall param')
# A definite leak is ours when our code called the allocator itself (a
# libuv handle, a poll, an array: malloc/calloc/realloc directly from
# src/*.c).  Python objects still unreachable at exit whose allocation
# merely passed through our code are CPython exit artefacts (their count does
# not grow with N); object/refcount leaks are what tests/test_leaks_all.py
# checks.  Any other memcheck error with one of our frames is ours.
alloc = re.compile(r'\b(malloc|calloc|realloc|uv__malloc|uv__calloc|uv__realloc)\b')
bad, info, other = [], [], 0
for rec in records:
    if not kinds.search(rec[0]):
        continue
    frames = [l for l in rec[1:] if l.lstrip().startswith(('at ', 'by '))]
    if 'definitely lost' in rec[0]:
        i = 0
        while i < len(frames) and alloc.search(frames[i]) and not ours.search(frames[i]):
            i += 1
        direct = i < len(frames) and (ours.search(frames[i]) or
                                      (i + 1 < len(frames) and 'uv_' in frames[i]
                                       and ours.search(frames[i + 1])))
        if direct:
            bad.append(rec)
        elif any(ours.search(l) for l in frames):
            info.append(rec)
        else:
            other += 1
    elif any(ours.search(l) for l in frames):
        bad.append(rec)
    else:
        other += 1
summary = [l for l in log.splitlines() if 'definitely lost:' in l or 'ERROR SUMMARY' in l]
print('\n'.join(summary))
print('valgrind.sh: %d report(s) in gevent_c; %d Python object(s) unreachable at exit '
      'allocated through gevent_c (exit artefacts, not counted); %d elsewhere (ignored)'
      % (len(bad), len(info), other))
for rec in info:
    print('  (info) %s <- %s' % (rec[0], ' <- '.join(
        re.sub(r'^\s*(at|by) 0x[0-9A-F]+: ', '', l) for l in rec[1:]
        if ours.search(l))[:200]))
for rec in bad:
    print('----\n' + '\n'.join(rec))
sys.exit(1 if bad else 0)
PY
