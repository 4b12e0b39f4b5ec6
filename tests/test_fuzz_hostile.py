"""Hostile-object fuzzing: a Hypothesis state machine (tests/fuzz_hostile.py)
over the hub, loops, every watcher type, run_callback, Waiter, greenlets,
the thread pool, the resolvers, a second thread and fork, whose callbacks,
arguments, values, exceptions and streams close watchers, destroy loops or
the hub, switch greenlets, run the GC or raise from their ``__del__``,
``__repr__``, ``__eq__``, ``__call__``, ... (see the module's docstring).

Each seed runs in its own interpreter, so a crash is reported (with the
replay command, the crashing example's steps and the stack) instead of
killing pytest.  A seed fails on a signal death, an abort, a hang, an
exception of a type that means a bug in C (SystemError, ...), or a hub that
no longer works after an example.

Environment (the defaults are a fixed, derandomized budget):
  GEVENT_C_HOSTILE_SEEDS     '1-8' (under ASan '1-5')
  GEVENT_C_HOSTILE_EXAMPLES  examples per seed, 40 (ASan 20)
  GEVENT_C_HOSTILE_STEPS     at most this many steps per example, 40
Longer run: python tests/fuzz_hostile.py --seeds 1-100 --examples 100
"""
import os

import pytest

import _util
import fuzz_hostile

_SEEDS = os.environ.get('GEVENT_C_HOSTILE_SEEDS', '1-5' if _util.UNDER_ASAN else '1-8')
SEEDS = fuzz_hostile.parse_seeds(_SEEDS)
EXAMPLES = int(os.environ.get('GEVENT_C_HOSTILE_EXAMPLES', '20' if _util.UNDER_ASAN else '40'))
STEPS = int(os.environ.get('GEVENT_C_HOSTILE_STEPS', '40'))
# one seed takes ~5-15 s here, a few times more under ASan or on a loaded machine
TIMEOUT = 300
STEP_TIMEOUT = 120 if _util.UNDER_ASAN else 60


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize('seed', SEEDS)
def test_fuzz_hostile(seed):
    ok, outcome, report = fuzz_hostile.run_seed(seed, EXAMPLES, STEPS, TIMEOUT, STEP_TIMEOUT,
                                                env=_util._clean_env())
    assert ok, 'hostile fuzzing found a failure:\n' + report
    print(report)


def test_harness_reports_a_crash(tmp_path):
    # The harness itself: a step that kills the process (abort(): ASan, under
    # which the suite also runs, would report a deliberate segfault as an
    # error of its own) is reported as a signal death with that step in the
    # log, not as a pass.
    code = ('import os, sys\n'
            'sys.argv[1:] = %r\n'
            'import fuzz_hostile as F\n'
            'orig = F.Driver.sleep\n'
            'def sleep(self, t):\n'
            '    if t == 0.001: os.abort()\n'
            '    return orig(self, t)\n'
            'F.Driver.sleep = sleep\n'
            'sys.exit(F.main())\n' % (['--seed', '1', '--examples', '30', '--steps', '20',
                                       '--log', str(tmp_path / 'log')],))
    p = _util.run_py(code, timeout=120)
    assert p.returncode == -6, (p.returncode, p.stdout, p.stderr[-3000:])
    assert 'FUZZ HOSTILE OK' not in p.stdout
    steps = fuzz_hostile.read_last_example(str(tmp_path / 'log'))
    assert steps[-1] == 'sleep(t=0.001)', steps
