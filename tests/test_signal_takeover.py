"""A signal watcher takes its signal over, as on libev.

While a signal watcher is active on a signal, a delivery runs the watcher's
callback and nothing else: no Python-level handler, no KeyboardInterrupt for
SIGINT.  The same program runs on gevent_c's hub, on gevent (libev, the
reference), and on gevent with our loop (``gevent_c.gevent_loop.loop``), and
must report the same events on each.

One difference is deliberate: when the last watcher stops, gevent_c gives
the signal back to the handler it replaced (Python's), where libev leaves
SIG_DFL (so a later SIGINT kills a gevent process outright).  That part is
checked on gevent_c only.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from _util import TESTS, _clean_env, check_py, compat_python, gevent_c_path

# argv[1]: 'gevent_c' (gevent_c.hub) or 'gevent' (gevent, on whichever loop
# GEVENT_LOOP names).  Prints one line: the events, in order.
PROGRAM = textwrap.dedent('''
    import os, signal, sys, time
    if sys.argv[1] == 'gevent_c':
        import gevent_c.hub as H
        sleep, hub, signal_handler = H.sleep, H.get_hub(), H.signal
    else:
        import gevent
        sleep, hub, signal_handler = gevent.sleep, gevent.get_hub(), gevent.signal_handler
    loop = hub.loop
    events = []

    def deliver(signum, expected):
        # send signum to ourselves; wait until `expected` events came (or
        # 2 s), then a little more, to catch anything that should not run
        os.kill(os.getpid(), signum)
        deadline = time.monotonic() + 2
        try:
            while len(events) < expected and time.monotonic() < deadline:
                sleep(0.01)
            sleep(0.05)
        except KeyboardInterrupt:
            events.append('KeyboardInterrupt')

    # a Python SIGTERM handler and a SIGTERM watcher: only the watcher runs
    signal.signal(signal.SIGTERM, lambda s, f: events.append('python SIGTERM'))
    w = loop.signal(signal.SIGTERM)
    w.start(events.append, 'watcher SIGTERM')
    deliver(signal.SIGTERM, 1)
    w.stop()

    # SIGINT through the hub's signal handler: no KeyboardInterrupt
    h = signal_handler(signal.SIGINT, events.append, 'handler SIGINT')
    deliver(signal.SIGINT, 2)
    h.cancel()

    # SIGINT through a loop watcher, twice
    w = loop.signal(signal.SIGINT)
    w.start(events.append, 'watcher SIGINT')
    deliver(signal.SIGINT, 3)
    deliver(signal.SIGINT, 4)
    w.stop()
    print(events)
''')

EXPECTED = ("['watcher SIGTERM', 'handler SIGINT', 'watcher SIGINT', "
            "'watcher SIGINT']")


def _run(python, mode, env):
    p = subprocess.run([python, '-c', PROGRAM, mode], cwd=TESTS, env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout.strip().splitlines()[-1]


def test_watcher_takes_over_on_gevent_c():
    assert _run(sys.executable, 'gevent_c', _clean_env()) == EXPECTED


@pytest.mark.parametrize('loop', ['libev', 'gevent_c'])
def test_same_events_on_gevent(loop):
    py = compat_python()
    if py is None:
        pytest.skip('no compat venv (make compat-venv)')
    if loop == 'libev':
        env = _clean_env({'GEVENT_LOOP': 'libev-cext'})
    else:
        env = _clean_env({'GEVENT_LOOP': 'gevent_c.gevent_loop.loop'})
        env['PYTHONPATH'] = gevent_c_path() + os.pathsep + env['PYTHONPATH']
    assert _run(py, 'gevent', env) == EXPECTED


def test_previous_handlers_come_back_after_stop(check_py):
    # after the last watcher stops: Python's SIGTERM handler runs, SIGINT is
    # KeyboardInterrupt again (the hub raises it in the main greenlet)
    out = check_py('''
        import os, signal, time
        import gevent_c.hub as H
        loop = H.get_hub().loop
        calls = []
        signal.signal(signal.SIGTERM, lambda s, f: calls.append('python'))
        ws = [loop.signal(signal.SIGTERM), loop.signal(signal.SIGTERM)]
        for w in ws:
            w.start(calls.append, 'watcher')
        os.kill(os.getpid(), signal.SIGTERM)
        H.sleep(0.1)
        assert calls == ['watcher', 'watcher'], calls
        ws[0].stop()          # one still active: still taken over
        os.kill(os.getpid(), signal.SIGTERM)
        H.sleep(0.1)
        assert calls == ['watcher'] * 3, calls
        ws[1].close()
        os.kill(os.getpid(), signal.SIGTERM)
        H.sleep(0.1)
        assert calls == ['watcher'] * 3 + ['python'], calls

        h = H.signal(signal.SIGINT, calls.append, 'handler')
        os.kill(os.getpid(), signal.SIGINT)
        H.sleep(0.1)
        h.cancel()
        assert calls[-1] == 'handler', calls
        t0 = time.monotonic()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            H.sleep(3)
        except KeyboardInterrupt:
            print('KeyboardInterrupt after %.2f s' % (time.monotonic() - t0))
    ''')
    assert 'KeyboardInterrupt after' in out


@pytest.mark.parametrize('how', ['destroy', 'thread'])
def test_takeover_ends_with_the_loop(check_py, how):
    # a watcher on a loop that is destroyed, or on a thread's hub when the
    # thread exits, gives SIGTERM back to Python's handler
    check_py('''
        import os, signal, threading
        import gevent_c.core as core
        import gevent_c.hub as H
        how = %r
        calls = []
        signal.signal(signal.SIGTERM, lambda s, f: calls.append('python'))
        started = []
        if how == 'destroy':
            L = core.loop(default=False)
            w = L.signal(signal.SIGTERM)
            w.start(lambda: None)
            os.kill(os.getpid(), signal.SIGTERM)
            L.run(nowait=True)
            assert calls == [], calls
            L.destroy()
        else:
            def run():
                w = H.get_hub().loop.signal(signal.SIGTERM)
                w.start(lambda: None)
                started.append(w)
            t = threading.Thread(target=run)
            t.start()
            t.join()
            del started[:]
        os.kill(os.getpid(), signal.SIGTERM)
        H.sleep(0.1)
        assert calls == ['python'], calls
    ''' % how)


def test_default_disposition_set_after_hub_comes_back(run_py):
    # SIGTERM had a Python handler when the hub came (so the loop wakes for
    # it), then SIG_DFL: after a watcher started and stopped, SIGTERM
    # terminates again, it is not swallowed
    p = run_py('''
        import os, signal
        import gevent_c.hub as H
        signal.signal(signal.SIGTERM, lambda s, f: None)
        H.sleep(0.01)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        w = H.get_hub().loop.signal(signal.SIGTERM)
        w.start(lambda: None)
        H.sleep(0.01)
        w.stop()
        print('sending', flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        H.sleep(1)
        print('survived')
    ''')
    assert 'sending' in p.stdout, p.stderr
    assert 'survived' not in p.stdout
    assert p.returncode == -15, (p.returncode, p.stderr)
