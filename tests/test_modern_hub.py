"""The modern gevent hub's names: get_loop/set_loop,
set_default_hub_class, Hub.cancel_waits_close_and_then, the settings read
from gevent's environment variables, and the blocking monitor
(gevent_c/_monitor.py).

Where gevent's behaviour is observable the same script runs on gevent's
hub (in the compat venv, when it exists) and on ours, and the outputs must
match.
"""
import os
import subprocess
import textwrap
import threading

import pytest

import gevent_c.hub as H
from gevent_c._config import settings, Settings
import _util

COMPAT_PY = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
                         'gevent_c', 'compat-venv', 'bin', 'python')


def side_by_side(code, env=None):
    """Run ``code`` with ``hub`` bound to gevent.hub (compat venv) and to
    gevent_c.hub; return both outputs (gevent's is None without the venv)."""
    prelude = 'import {mod} as hub\n'
    ours = _util.check_py(prelude.format(mod='gevent_c.hub') + textwrap.dedent(code), env=env)
    theirs = None
    if os.path.exists(COMPAT_PY):
        e = _util._clean_env(env)
        e.pop('PYTHONPATH', None)
        p = subprocess.run([COMPAT_PY, '-c', prelude.format(mod='gevent.hub') +
                            textwrap.dedent(code)], env=e, cwd='/', capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        theirs = p.stdout
    return ours, theirs


def assert_same(code, env=None):
    ours, theirs = side_by_side(code, env)
    if theirs is None:
        pytest.skip('no compat venv with gevent (make compat-venv)')
    assert ours == theirs
    return ours


# ---------------------------------------------------------------- get_loop / set_loop

LOOP_SCRIPT = '''
    import threading
    out = []
    def main():
        out.append(hub.get_loop() is None)
        h = hub.get_hub()
        loop = h.loop
        h.destroy(destroy_loop=False)      # the loop is kept for the next hub
        out.append(hub.get_loop() is loop)
        h2 = hub.get_hub()
        out.append(h2.loop is loop)
        hub.set_loop(None)
        h2.destroy(destroy_loop=False)
        out.append(hub.get_loop() is loop)
        h3 = hub.get_hub()
        out.append(h3.loop is loop)
        h3.destroy(destroy_loop=True)      # destroyed: forgotten
        out.append(hub.get_loop() is None)
        h4 = hub.get_hub()
        out.append(h4.loop is not loop)
        hub.set_loop(h4.loop)
        out.append(hub.get_loop() is h4.loop)
        h4.destroy(destroy_loop=True)
        out.append(hub.get_loop() is None)
    t = threading.Thread(target=main)
    t.start(); t.join()
    print(out)
'''


def test_get_set_loop_like_gevent():
    out = assert_same(LOOP_SCRIPT)
    assert out.strip() == str([True, True, True, True, True, True, True, True, True])


def test_get_set_loop_ours():
    # without the venv too: the same script on our hub alone
    out = _util.check_py('import gevent_c.hub as hub\n' + textwrap.dedent(LOOP_SCRIPT))
    assert out.strip() == str([True] * 9)


def test_set_default_hub_class_like_gevent():
    out = assert_same('''
        import threading
        try:
            get_hub_class = hub.get_hub_class
        except AttributeError:                # gevent keeps it in _hub_local
            from gevent._hub_local import get_hub_class
        class MyHub(hub.Hub):
            pass
        res = []
        def before():
            res.append(get_hub_class() is hub.Hub)
        t = threading.Thread(target=before); t.start(); t.join()
        hub.set_default_hub_class(MyHub)
        def after():
            res.append(get_hub_class() is MyHub)
            h = hub.get_hub()
            res.append(type(h) is MyHub)
            h.destroy(destroy_loop=True)
        t = threading.Thread(target=after); t.start(); t.join()
        hub.set_default_hub_class(hub.Hub)
        print(res)
    ''')
    assert out.strip() == '[True, True, True]'


# ---------------------------------------------------------------- cancel_waits_close_and_then


def test_cancel_waits_close_and_then_nobody_waiting(hub):
    r, w = os.pipe()
    try:
        io1 = hub.loop.io(r, 1)
        calls = []
        hub.cancel_waits_close_and_then([io1, None], ValueError, calls.append, 'done')
        assert calls == ['done']            # at once: nobody waits
        assert io1.closed if hasattr(io1, 'closed') else io1.ref is not None
        with pytest.raises(Exception):
            io1.start(lambda: None)         # closed watchers cannot start
    finally:
        os.close(r)
        os.close(w)


def test_cancel_waits_close_and_then_wakes_waiter(hub):
    r, w = os.pipe()
    try:
        watcher = hub.loop.io(r, 1)
        seen = []

        def waiter():
            try:
                hub.wait(watcher)
            except ValueError as ex:
                seen.append(('raised', str(ex)))
        g = H.spawn_raw(waiter)
        H.sleep(0)                          # the greenlet now waits on the watcher
        assert watcher.active
        calls = []
        hub.cancel_waits_close_and_then([watcher], ValueError('closed'), calls.append, 'then')
        assert calls == []                  # deferred: after the waiter is woken
        H.sleep(0)
        H.sleep(0)
        assert seen == [('raised', 'closed')]
        assert calls == ['then']
        assert not watcher.active
        assert g.dead
    finally:
        os.close(r)
        os.close(w)


def test_cancel_waits_close_and_then_like_gevent():
    out = assert_same('''
        import os
        h = hub.get_hub()
        r, w = os.pipe()
        watcher = h.loop.io(r, 1)
        log = []
        def waiter():
            try:
                h.wait(watcher)
            except OSError as ex:
                log.append('waiter: %s' % ex)
        g = hub.spawn_raw(waiter)
        hub.sleep(0)
        h.cancel_waits_close_and_then([watcher, None], OSError(9, 'closed'), log.append, 'then')
        log.append('returned')
        hub.sleep(0.01)
        print(log)
    ''')
    assert "'returned'" in out and "'then'" in out and 'waiter' in out


# ---------------------------------------------------------------- settings (gevent's env vars)


def test_settings_defaults_and_validation():
    s = Settings()
    env = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith('GEVENT_')}
    try:
        assert s.monitor_thread is False
        assert s.max_blocking_time == 0.1
        assert s.print_blocking_reports is True
        assert s.threadpool_idle_task_timeout == 5.0
        assert s.resolver_nameservers is None
        with pytest.raises(ValueError, match='positive'):
            s.max_blocking_time = 0
        with pytest.raises(TypeError):
            s.monitor_thread = 'yes'
        with pytest.raises(AttributeError, match='no setting'):
            s.no_such_thing
        s.threadpool_idle_task_timeout = -1     # -1: never, as gevent documents
        assert s.threadpool_idle_task_timeout == -1
    finally:
        os.environ.update(env)


def test_settings_from_environment_like_gevent():
    env = {'GEVENT_MONITOR_THREAD_ENABLE': 'on', 'GEVENT_MAX_BLOCKING_TIME': '0.25',
           'GEVENT_THREADPOOL_IDLE_TASK_TIMEOUT': '2.5',
           'GEVENT_RESOLVER_NAMESERVERS': '127.0.0.1,10.0.0.1',
           'GEVENT_MONITOR_PRINT_BLOCKING_REPORTS': 'false'}
    code = '''
        try:
            from gevent import config as c
        except ImportError:
            from gevent_c._config import settings as c
        print(c.monitor_thread, c.max_blocking_time, c.threadpool_idle_task_timeout,
              c.resolver_nameservers, c.print_blocking_reports)
    '''
    out = assert_same(code, env=env)
    assert out.split() == ['True', '0.25', '2.5', "['127.0.0.1',", "'10.0.0.1']", 'False']


def test_bad_environment_value_is_a_clear_error():
    p = _util.run_py('''
        from gevent_c._config import settings
        settings.max_blocking_time
    ''', env={'GEVENT_MAX_BLOCKING_TIME': 'soon'})
    assert p.returncode != 0
    assert "GEVENT_MAX_BLOCKING_TIME='soon'" in p.stderr


def test_threadpool_idle_timeout_from_environment():
    # the hub's pool gets GEVENT_THREADPOOL_IDLE_TASK_TIMEOUT: idle workers exit
    out = _util.check_py('''
        import time
        import gevent_c.hub as H
        h = H.get_hub()
        pool = h.threadpool
        assert pool.spawn(lambda: 7).get() == 7
        assert pool.size == 1, pool.size
        deadline = time.time() + 5
        while pool.size and time.time() < deadline:
            H.sleep(0.02)
        print(pool.size)
    ''', env={'GEVENT_THREADPOOL_IDLE_TASK_TIMEOUT': '0.1'})
    assert out.strip() == '0'


def test_threadpool_without_the_variable_keeps_idle_workers():
    # the documented call, cls(size, hub=hub): workers stay (gevent: 5 s default)
    out = _util.check_py('''
        import gevent_c.hub as H
        from gevent_c._config import settings
        assert not settings.is_explicit('threadpool_idle_task_timeout')
        h = H.get_hub()
        assert h.threadpool.spawn(lambda: 1).get() == 1
        H.sleep(0.3)
        print(h.threadpool.size)
    ''')
    assert out.strip() == '1'


def test_threadpool_idle_timeout_assigned():
    out = _util.check_py('''
        import time
        import gevent_c.hub as H
        from gevent_c._config import settings
        settings.threadpool_idle_task_timeout = 0.1
        assert settings.is_explicit('threadpool_idle_task_timeout')
        pool = H.get_hub().threadpool
        assert pool.spawn(lambda: 1).get() == 1
        deadline = time.time() + 5
        while pool.size and time.time() < deadline:
            H.sleep(0.02)
        print(pool.size)
    ''')
    assert out.strip() == '0'


def test_ares_resolver_uses_nameservers_setting():
    pytest.importorskip('gevent_c._ares', reason='gevent_c built without c-ares')
    out = _util.check_py('''
        from gevent_c import resolver_ares
        r = resolver_ares.Resolver()
        print(r.params.get('servers'), r.params.get('timeout'))
        r.close()
        # GEVENTARES_SERVERS, the older name, wins when both are given
        import os
        os.environ['GEVENTARES_SERVERS'] = '127.0.0.3'
        r = resolver_ares.Resolver()
        print(r.params.get('servers'))
        r.close()
    ''', env={'GEVENT_RESOLVER_NAMESERVERS': '127.0.0.1:5353,127.0.0.2',
              'GEVENT_RESOLVER_TIMEOUT': '0.5'})
    assert out.splitlines() == ["['127.0.0.1:5353', '127.0.0.2'] 0.5", "['127.0.0.3']"]


def test_ares_resolver_resolves_through_nameservers_setting():
    pytest.importorskip('gevent_c._ares', reason='gevent_c built without c-ares')
    from dns_server import DnsServer, find_dnsmasq
    if find_dnsmasq() is None:
        pytest.skip('dnsmasq is not installed (make deps)')
    server = DnsServer({'monitor.test': ['10.9.8.7']}).start()
    try:
        out = _util.check_py('''
            from gevent_c import resolver_ares
            r = resolver_ares.Resolver()
            print(r.gethostbyname('monitor.test'))
            r.close()
        ''', env={'GEVENT_RESOLVER_NAMESERVERS': server.server,
                  'GEVENT_RESOLVER_TIMEOUT': '2'})
    finally:
        server.stop()
    assert out.strip() == '10.9.8.7'


# ---------------------------------------------------------------- the blocking monitor

MONITOR_ENV = {'GEVENT_MONITOR_THREAD_ENABLE': '1', 'GEVENT_MAX_BLOCKING_TIME': '0.05'}


def test_monitor_off_by_default(hub):
    assert settings.monitor_thread is False or 'GEVENT_MONITOR_THREAD_ENABLE' in os.environ
    if not settings.monitor_thread:
        assert hub.periodic_monitoring_thread is None
        assert hub.start_periodic_monitoring_thread() is None


def test_monitor_reports_a_blocking_greenlet():
    out = _util.check_py('''
        import io, time
        import gevent_c.hub as H
        from gevent_c import _monitor
        events = []
        _monitor.subscribers.append(events.append)
        hub = H.get_hub()
        stream = hub.exception_stream = io.StringIO()
        mon = hub.periodic_monitoring_thread
        assert mon is not None and hub.start_periodic_monitoring_thread() is mon
        H.sleep(0.3)                       # idle: waiting in the poll is not blocking
        assert events == [], events
        def blocker():
            time.sleep(0.4)                # holds the loop (not cooperative)
        g = H.spawn_raw(blocker)
        H.sleep(0.01)
        H.sleep(0.2)                       # let the monitor see the loop move again
        deadline = time.monotonic() + 10   # a loaded machine: the report may lag
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(events) == 1, events    # one stall, one report
        ev = events[0]
        assert ev.greenlet is g, (ev.greenlet, g)
        assert ev.blocking_time == 0.05 and ev.hub is hub
        text = stream.getvalue()
        assert 'appears to be blocked' in text, text
        assert 'in blocker' in text, text   # the blocked stack
        assert '%x' % id(g) in text, text   # the greenlet, by its repr
        assert text.count('appears to be blocked') == 1
        print('ok')
    ''', env=MONITOR_ENV)
    assert out.strip() == 'ok'


def test_monitor_reports_a_blocking_hub_callback():
    # gevent's switch counter cannot see this one: no greenlet switches
    out = _util.check_py('''
        import io, time
        import gevent_c.hub as H
        from gevent_c import _monitor
        events = []
        _monitor.subscribers.append(events.append)
        hub = H.get_hub()
        hub.exception_stream = io.StringIO()
        hub.loop.run_callback(time.sleep, 0.4)
        H.sleep(0.2)
        deadline = time.monotonic() + 10   # a loaded machine: the report may lag
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(events) == 1, events
        assert events[0].greenlet is hub
        assert 'appears to be blocked' in hub.exception_stream.getvalue()
        print('ok')
    ''', env=MONITOR_ENV)
    assert out.strip() == 'ok'


def test_monitor_print_reports_off():
    out = _util.check_py('''
        import io, time
        import gevent_c.hub as H
        from gevent_c import _monitor
        events = []
        _monitor.subscribers.append(events.append)
        hub = H.get_hub()
        hub.exception_stream = io.StringIO()
        g = H.spawn_raw(time.sleep, 0.4)
        H.sleep(0.2)
        deadline = time.monotonic() + 10   # a loaded machine: the report may lag
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(events) == 1 and events[0].info     # the event still carries the report
        assert hub.exception_stream.getvalue() == ''
        print('ok')
    ''', env=dict(MONITOR_ENV, GEVENT_MONITOR_PRINT_BLOCKING_REPORTS='0'))
    assert out.strip() == 'ok'


def test_monitor_stops_with_the_hub():
    out = _util.run_py('''
        import os, threading, time
        import gevent_c.hub as H
        def nthreads():
            return len(os.listdir('/proc/self/task'))
        base = nthreads()
        res = []
        def main():
            h = H.get_hub()
            res.append(h.periodic_monitoring_thread is not None)
            res.append(nthreads())
            h.destroy(destroy_loop=True)
            res.append(h.periodic_monitoring_thread is None)
        t = threading.Thread(target=main); t.start(); t.join()
        # the monitor notices kill() within its 0.5 s wait; a loaded
        # machine under ASan is given far more
        deadline = time.time() + 15
        while nthreads() != base and time.time() < deadline:
            time.sleep(0.02)
        if nthreads() != base:
            import sys, traceback
            for ident, frame in sys._current_frames().items():
                print('thread', hex(ident), ''.join(traceback.format_stack(frame)),
                      file=sys.stderr)
        print(res[0], res[1] - base, res[2], nthreads() - base)
    ''', env=MONITOR_ENV, timeout=40)
    # the hub's thread plus its monitor; afterwards both are gone
    assert out.stdout.split() == ['True', '2', 'True', '0'], out.stderr


def test_monitor_report_like_gevent():
    # the same blocking program on gevent's monitor and on ours: both report
    # the blocked greenlet once or more, with its stack, on the hub's stream
    code = '''
        import io, time
        h = hub.get_hub()
        h.exception_stream = stream = io.StringIO()
        def blocker():
            time.sleep(0.5)
        g = hub.spawn_raw(blocker)
        hub.sleep(0.01)
        hub.sleep(0.3)
        text = stream.getvalue()
        print('blocked' if 'appears to be blocked' in text else 'silent',
              'stack' if 'in blocker' in text else 'nostack',
              'named' if '%x' % id(g) in text else 'unnamed')
    '''
    ours, theirs = side_by_side(code, env=MONITOR_ENV)
    assert ours.split() == ['blocked', 'stack', 'named']
    if theirs is not None:
        assert theirs == ours


def test_stall_wait_arguments(hub):
    loop = hub.loop
    with pytest.raises(ValueError):
        loop._stall_wait(0, 1)
    with pytest.raises(ValueError):
        loop._stall_wait(0.01, -1)
    with pytest.raises(TypeError):
        loop._stall_wait('x', 1)
    errors = []

    def from_the_loop():
        try:
            loop._stall_wait(0.01, 0.01)
        except RuntimeError as ex:
            errors.append(ex)
    loop.run_callback(from_the_loop)
    H.sleep(0)
    assert len(errors) == 1 and 'another thread' in str(errors[0])


def test_stall_wait_idle_and_stalled(hub):
    loop = hub.loop
    results = {}

    def watch(key, timeout):
        results[key] = loop._stall_wait(0.02, timeout)

    # idle: the hub waits in the poll; no stall within the timeout
    t = threading.Thread(target=watch, args=('idle', 0.2))
    t.start()
    H.sleep(0.3)
    t.join()
    assert results['idle'] is None
    # a greenlet holds the loop: the pass number comes back
    import time
    t = threading.Thread(target=watch, args=('held', 2.0))
    t.start()
    H.spawn_raw(time.sleep, 0.3)
    H.sleep(0.01)
    t.join()
    assert isinstance(results['held'], int)
    assert results['held'] <= loop.iteration


def test_monitor_sees_a_stall_while_c_code_holds_the_gil():
    # sum() over a range runs in C without ever releasing the GIL: a
    # Python-level monitor could not run until it ends; ours notices in C.
    out = _util.check_py('''
        import io, time
        import gevent_c.hub as H
        from gevent_c import _monitor
        events = []
        _monitor.subscribers.append(events.append)
        hub = H.get_hub()
        hub.exception_stream = io.StringIO()
        def hold():
            t = time.perf_counter()
            n = 10 ** 6
            while time.perf_counter() - t < 0.3:
                sum(range(n))
                n *= 2
        hub.loop.run_callback(hold)
        H.sleep(0.3)
        # The monitor saw the stall without the GIL; its report (Python)
        # runs once it gets the GIL, which can be after hold() returns on a
        # loaded machine: wait for it, giving the GIL away.
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(events) >= 1, events
        assert events[0].greenlet is hub
        print('ok')
    ''', env=MONITOR_ENV, timeout=40)
    assert out.strip() == 'ok'


def test_monitor_extra_functions_and_fork():
    out = _util.check_py('''
        import os, time
        import gevent_c.hub as H
        hub = H.get_hub()
        mon = hub.periodic_monitoring_thread
        calls = []
        mon.add_monitoring_function(calls.append, 0.02)
        H.sleep(0.3)
        assert len(calls) >= 3 and all(c is hub for c in calls), calls
        for bad in ((calls.append, 0), (calls.append, -1), (42, 1)):
            try:
                mon.add_monitoring_function(*bad)
            except ValueError:
                pass
            else:
                raise AssertionError(bad)
        mon.add_monitoring_function(calls.append, None)     # removed
        H.sleep(0.1)
        n = len(calls)
        H.sleep(0.2)
        assert len(calls) == n, (n, len(calls))
        # a forked child gets its own monitor thread after reinit()
        pid = os.fork()
        if pid == 0:
            H.reinit()
            before = mon.monitor_thread_ident
            ok = mon.pid == os.getpid() and len(os.listdir('/proc/self/task')) == 2
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    ''', env=MONITOR_ENV)
    assert out.strip() == '0'
