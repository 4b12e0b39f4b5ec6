"""The main thread is the interpreter's, whatever `threading` says: gevent's
monkey.patch_all() (run before the hub exists, the usual order) replaces
threading's main thread and _thread.get_ident.  The main thread's hub must
still get the default loop, Python's signal wake-up fd (Ctrl-C wakes an idle
hub at once) and working child watchers."""
import os
import signal
import subprocess
import sys
import time

import pytest

import _util

pytestmark = pytest.mark.timeout(60)


def _sigint_latency(cmd, env):
    """Start cmd (prints 'ready' once idle in the loop, then the
    time.monotonic() at which KeyboardInterrupt reached it), SIGINT it
    after it idled a moment, and return (latency, output)."""
    p = subprocess.Popen(cmd, cwd=_util.TESTS, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.strip() == 'ready', (line, p.stderr.read() if p.poll() is not None else '')
        time.sleep(0.3)              # idle: blocked in epoll_wait
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    lines = out.split()
    assert p.returncode == 0 and lines[:1] == ['KI'], (out, err)
    return float(lines[1]) - t0, out


SERVER = r'''
from gevent import monkey
monkey.patch_all()
import time
import gevent
from gevent.pywsgi import WSGIServer
hub = gevent.get_hub()
assert type(hub.loop).__module__ == 'gevent_c.core', type(hub.loop)
assert hub.loop.default, 'the main thread did not get the default loop'
srv = WSGIServer(('127.0.0.1', 0), lambda env, start: [], log=None)
srv.start()
print('ready', flush=True)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    print('KI %r' % time.monotonic(), flush=True)
'''

OWN_HUB = r'''
import threading, time
class NotMain:
    ident = 1
    name = 'NotMain'
threading.main_thread = lambda: NotMain()
import gevent_c.hub as H
assert H.MAIN_THREAD == threading.get_ident() != 1
hub = H.get_hub()
assert hub.loop.default and hub.main_hub
print('ready', flush=True)
try:
    H.sleep(30)
except KeyboardInterrupt:
    print('KI %r' % time.monotonic(), flush=True)
'''


def _gevent_env():
    return _util.gevent_env()


def test_patch_all_first_idle_server_gets_ctrl_c():
    py = _util.compat_python()
    if py is None:
        pytest.skip('compat venv absent (make compat-venv)')
    latency, out = _sigint_latency([py, '-c', SERVER], _gevent_env())
    assert latency < 0.1, out


def test_threading_main_thread_replaced_own_hub_gets_ctrl_c():
    latency, out = _sigint_latency([sys.executable, '-c', OWN_HUB], _util._clean_env())
    assert latency < 0.1, out


def test_patch_all_first_child_watchers_work():
    if _util.compat_python() is None:
        pytest.skip('compat venv absent (make compat-venv)')
    p = _util.run_gevent('''
        from gevent import monkey
        monkey.patch_all()
        import os, sys
        import gevent, gevent.subprocess
        loop = gevent.get_hub().loop
        assert loop.default
        # gevent.subprocess reaps through the loop's child watcher
        proc = gevent.subprocess.Popen([sys.executable, '-c', 'raise SystemExit(7)'])
        print('popen', proc.wait(timeout=10))
        # a patched os.fork/waitpid does too
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        print('fork', os.WEXITSTATUS(status))
        # and a bare child watcher
        pid = os.fork()
        if pid == 0:
            os._exit(5)
        w = loop.child(pid)
        res = []
        w.start(lambda: res.append(w.rstatus))
        with gevent.Timeout(10):
            while not res:
                gevent.sleep(0.01)
        print('child', os.WEXITSTATUS(res[0]))
    ''')
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ['popen', '7', 'fork', '3', 'child', '5'], (p.stdout, p.stderr)


def test_main_thread_ident_from_threads_and_after_fork(check_py):
    out = check_py('''
        import os, threading
        import gevent_c._hub as C
        main = threading.get_ident()
        assert C._main_thread_ident() == main
        seen = []
        t = threading.Thread(target=lambda: seen.append(C._main_thread_ident()))
        t.start(); t.join()
        assert seen == [main], (seen, main)
        # forked from a worker thread: that thread is the child's main thread
        r, w = os.pipe()
        def forker():
            pid = os.fork()
            if pid == 0:
                ok = C._main_thread_ident() == threading.get_ident() != main
                os.write(w, b'1' if ok else b'0')
                os._exit(0)
            os.waitpid(pid, 0)
        t = threading.Thread(target=forker)
        t.start(); t.join()
        print(os.read(r, 1).decode())
    ''')
    assert out.strip() == '1'
