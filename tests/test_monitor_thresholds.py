"""The blocking monitor at every threshold gevent accepts
(``GEVENT_MAX_BLOCKING_TIME``, gevent_c/_monitor.py): stalls are reported,
an idle monitor costs about no CPU, and no threshold kills the thread.

Thresholds up to the monitor's ``stall_wait_timeout`` (0.5 s) wait for a
stall in C; longer ones sleep in steps and sample once per threshold.  Both
paths are run with small thresholds (the second by lowering
``stall_wait_timeout``); the long thresholds are checked by the plan the
monitor computes, and for an idle second of no crash and little CPU, without
waiting them out.
"""
import os
import subprocess
import sys
import textwrap

import pytest

import _util
from test_modern_hub import side_by_side

MONITOR = {'GEVENT_MONITOR_THREAD_ENABLE': '1'}


def _start(code, threshold):
    env = _util._clean_env(dict(MONITOR, GEVENT_MAX_BLOCKING_TIME=threshold))
    return subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)], cwd=_util.TESTS,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, (p.args, out, err)
    return out


def test_plan_for_every_threshold():
    # What the thread does next, as it computes it: every threshold is a
    # wait the thread can make (the C wait takes at most 3600 s and needs two
    # samples an interval apart within its timeout), and no step is longer
    # than stall_wait_timeout (kill() is seen within it).
    out = _util.check_py('''
        import math
        import gevent_c.hub as H
        from gevent_c._config import settings
        mon = H.get_hub().periodic_monitoring_thread
        chunk = mon.stall_wait_timeout
        assert chunk == 0.5
        for t in (0.001, 0.005, 0.05, 0.1, 0.5, 0.5001, 0.6, 2, 3600, 3601, 1e9, math.inf):
            settings.max_blocking_time = t
            how, a, b = mon._plan()
            if t <= chunk:
                assert how == 'stall_wait' and a == max(t, mon.min_sleep_time) and b == chunk
                assert 0 < a <= 3600 and int(b / a) + 1 >= 2, (t, a, b)
            else:
                assert (how, a, b) == ('sleep', t, chunk), (t, how, a, b)
        mon.add_monitoring_function(print, 0.2)      # a second function: sleeps
        settings.max_blocking_time = 0.1
        assert mon._plan() == ('sleep', 0.1, chunk)
        settings.max_blocking_time = 10
        assert mon._plan() == ('sleep', 0.2, chunk)
        for bad in (float('nan'), 0, -1):
            try:
                settings.max_blocking_time = bad
            except ValueError:
                pass
            else:
                raise AssertionError(bad)
            try:
                mon.add_monitoring_function(print, bad)
            except ValueError:
                pass
            else:
                raise AssertionError(bad)
        print('ok')
    ''', env=dict(MONITOR, GEVENT_MAX_BLOCKING_TIME='0.1'))
    assert out.strip() == 'ok'


def test_nan_threshold_from_the_environment_is_a_clear_error():
    # gevent accepts it, and its monitor thread dies on time.sleep(nan)
    p = _util.run_py('''
        import gevent_c.hub as H
        H.get_hub().periodic_monitoring_thread
    ''', env=dict(MONITOR, GEVENT_MAX_BLOCKING_TIME='nan'))
    assert p.returncode != 0
    assert "GEVENT_MAX_BLOCKING_TIME='nan': must be positive" in p.stderr


REPORT = '''
    import io, time
    import gevent_c.hub as H
    from gevent_c import _monitor
    _monitor.PeriodicMonitoringThread.stall_wait_timeout = %(chunk)r
    events = []
    _monitor.subscribers.append(events.append)
    hub = H.get_hub()
    hub.exception_stream = stream = io.StringIO()
    mon = hub.periodic_monitoring_thread
    how = mon._plan()[0]
    assert how == %(how)r, how
    H.sleep(%(threshold)r * 2)               # idle: nothing to report
    assert events == [], events
    def blocker():
        time.sleep(%(threshold)r * 4)        # holds the loop for 4 thresholds
    g = H.spawn_raw(blocker)
    H.sleep(0)
    H.sleep(%(threshold)r)
    deadline = time.monotonic() + 10         # a loaded machine: the report may lag
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(events) == 1, events          # one stall, one report
    assert events[0].greenlet is g and events[0].blocking_time == %(threshold)r
    assert 'in blocker' in stream.getvalue()
    print('ok')
'''


@pytest.mark.parametrize('threshold,chunk,how', [
    (0.02, 0.5, 'stall_wait'),
    (0.1, 0.5, 'stall_wait'),
    (0.03, 0.02, 'sleep'),             # longer than one step: sampled per threshold
    (0.1, 0.04, 'sleep'),
])
def test_stall_reported(threshold, chunk, how):
    p = _start(REPORT % dict(threshold=threshold, chunk=chunk, how=how), str(threshold))
    assert _finish(p).strip() == 'ok'


IDLE = '''
    import io, os, time
    import gevent_c.hub as H
    def nthreads():
        return len(os.listdir('/proc/self/task'))
    hub = H.get_hub()
    hub.exception_stream = stream = io.StringIO()
    assert hub.periodic_monitoring_thread is not None
    assert nthreads() == 2
    H.sleep(0.05)
    cpu = time.process_time()
    H.sleep(1.0)                             # idle for a second
    cpu = time.process_time() - cpu
    alive = nthreads() == 2
    hub.destroy(destroy_loop=True)           # the thread notices within a step
    deadline = time.monotonic() + 15
    while nthreads() != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    print(round(cpu, 3), alive, nthreads(), repr(stream.getvalue()))
'''


def test_idle_monitor_costs_no_cpu_at_any_threshold():
    # each threshold in its own process, all at once: one idle second each
    thresholds = ['0.05', '0.6', '2', '3600', '3601', '1e9', 'inf']
    procs = [(t, _start(IDLE, t)) for t in thresholds]
    for t, p in procs:
        cpu, alive, left, errors = _finish(p).split(None, 3)
        # a spinning monitor takes most of the second; a dead one leaves
        # one thread and its error on the stream
        assert float(cpu) < 0.3, (t, cpu)
        assert alive == 'True' and errors.strip() == "''", (t, alive, errors)
        assert left == '1', (t, left)          # stopped with the hub


def test_long_threshold_stall_reported_like_gevent():
    # above the C wait's 0.5 s, with the default step: gevent reports this
    # one too
    code = '''
        import io, time
        h = hub.get_hub()
        h.exception_stream = stream = io.StringIO()
        def blocker():
            time.sleep(1.5)                  # more than two thresholds
        g = hub.spawn_raw(blocker)
        hub.sleep(0)
        hub.sleep(0.1)
        deadline = time.monotonic() + 10
        while 'appears to be blocked' not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        text = stream.getvalue()
        print('blocked' if 'appears to be blocked' in text else 'silent',
              'stack' if 'in blocker' in text else 'nostack')
    '''
    ours, theirs = side_by_side(code, env=dict(MONITOR, GEVENT_MAX_BLOCKING_TIME='0.6'))
    assert ours.split() == ['blocked', 'stack']
    if theirs is not None:
        assert theirs == ours
