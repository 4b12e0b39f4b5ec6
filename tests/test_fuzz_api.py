"""API fuzzing (docs/reliability.md): a seeded random driver (tests/reliability/fuzz_api.py)
over loop, watcher, Waiter, hub, callback and thread-pool calls with random,
often invalid arguments, from main, other greenlets, the hub and other
threads.  Only Python exceptions may come out: a crash, abort, sanitizer
report or hang fails the test, which then prints the seed and the last
operations.  It runs in a subprocess so that a crash cannot take pytest down.

Environment:
  GEVENT_C_FUZZ_SEED   seed of the CI run (default: a fixed seed, so CI is
                       reproducible; pass another to explore)
  GEVENT_C_FUZZ_OPS    operations (default 10000)
Long local run: python tests/reliability/fuzz_api.py --seeds 1-200 --ops 20000
"""
import os
import subprocess
import sys
import tempfile

import pytest

import _util

FUZZ = os.path.join(_util.TESTS, 'reliability', 'fuzz_api.py')
SEED = int(os.environ.get('GEVENT_C_FUZZ_SEED', '20261127'))
OPS = int(os.environ.get('GEVENT_C_FUZZ_OPS', '10000'))
# ~10 s normally, a few times more under ASan or valgrind.
TIMEOUT = 240


def _run(seed, ops, extra_env=None):
    fd, log = tempfile.mkstemp(prefix='gevent_c_fuzz_%d_' % seed, suffix='.log')
    os.close(fd)
    env = _util._clean_env(extra_env)
    try:
        p = subprocess.run([sys.executable, FUZZ, '--seed', str(seed), '--ops', str(ops),
                            '--log', log, '--op-timeout', '30'],
                           cwd=_util.TESTS, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = 'timeout', e.stdout or '', e.stderr or ''
        if isinstance(out, bytes):
            out, err = out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')
    with open(log, encoding='utf-8', errors='replace') as f:
        tail = f.readlines()[-40:]
    ok = rc == 0 and 'FUZZ OK' in out
    if ok:
        os.unlink(log)
    return ok, rc, out, err, tail, log


@pytest.mark.timeout(TIMEOUT + 30)
def test_fuzz_api():
    ok, rc, out, err, tail, log = _run(SEED, OPS)
    assert ok, (
        'fuzz run failed: seed=%d ops=%d exit=%r\n'
        'reproduce: python tests/reliability/fuzz_api.py --seed %d --ops %d --log /tmp/f.log\n'
        '--- last operations (%s) ---\n%s--- stdout ---\n%s\n--- stderr (tail) ---\n%s'
        % (SEED, OPS, rc, SEED, OPS, log, ''.join(tail), out[-3000:],
           err if len(err) < 8000 else err[:4000] + '\n[...]\n' + err[-4000:]))
    print(out)


def test_fuzzer_reports_a_crash():
    # The harness itself: a process that dies mid-run is reported as a
    # failure with its last operation, not as a pass.
    code = ('import os, sys; sys.argv[1:] = ["--seed", "1", "--ops", "5"]\n'
            'sys.path.insert(0, %r)\n'
            'import fuzz_api\n'
            'orig = fuzz_api.Fuzzer.run_one\n'
            'def run_one(self, nested=False):\n'
            '    orig(self, nested)\n'
            '    if self.opcount == 3: os.abort()\n'
            'fuzz_api.Fuzzer.run_one = run_one\n'
            'fuzz_api.main()\n' % os.path.dirname(FUZZ))
    p = _util.run_py(code, timeout=60)
    assert p.returncode != 0
    assert 'FUZZ OK' not in p.stdout
