"""Regression tests for crashes found by review (docs/reliability.md, F13-F18):
one focused test per fixed class.  Everything that could crash, hang or
kill the interpreter runs in a fresh subprocess (check_py / run_py)."""
import signal
import sys

import pytest

# A process's caught signals, as the kernel sees them (not Python's view).
SIGCGT = '''
def caught(signum):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('SigCgt:'):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    raise AssertionError('no SigCgt')
'''


# ---- destroying a loop gives signal dispositions back ----

def test_loop_destroy_restores_signal_disposition(run_py):
    p = run_py(SIGCGT + '''
import os, signal, time
from gevent_c.core import loop
l = loop(default=False)
w = l.signal(signal.SIGTERM)
w.start(lambda: None)
assert caught(signal.SIGTERM)
l.destroy()
assert not w.active
assert not caught(signal.SIGTERM)
del w
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(1)
print('survived')
''')
    assert p.returncode == -signal.SIGTERM, (p.returncode, p.stdout, p.stderr)
    assert 'survived' not in p.stdout


def test_hub_destroy_restores_signal_disposition(check_py):
    out = check_py(SIGCGT + '''
import signal, threading
import gevent_c.hub as H
def body():
    hub = H.get_hub()
    w = hub.loop.signal(signal.SIGUSR1)
    w.start(lambda: None)
    assert caught(signal.SIGUSR1)
    hub.destroy(destroy_loop=True)
    assert not caught(signal.SIGUSR1)
t = threading.Thread(target=body); t.start(); t.join()
# main thread's hub, a private loop
hub = H.Hub(loop=__import__('gevent_c.core', fromlist=['loop']).loop(default=False))
w = hub.loop.signal(signal.SIGUSR2); w.start(lambda: None)
assert caught(signal.SIGUSR2)
hub.destroy(destroy_loop=True)
assert not caught(signal.SIGUSR2)
print('ok')
''')
    assert out.strip() == 'ok'


def test_thread_exit_restores_signal_disposition(check_py):
    # the thread never destroys its hub: the thread-exit guard does
    out = check_py(SIGCGT + '''
import signal, threading
import gevent_c.hub as H
started = []
def body():
    w = H.get_hub().loop.signal(signal.SIGUSR1)
    w.start(lambda: None)
    started.append(caught(signal.SIGUSR1))
    H.sleep(0.001)
for i in range(3):
    t = threading.Thread(target=body); t.start(); t.join()
assert started == [True] * 3, started
assert not caught(signal.SIGUSR1)
print('ok')
''')
    assert out.strip() == 'ok'


def test_default_loop_destroy_restores_sigchld(check_py):
    out = check_py(SIGCGT + '''
import signal
import gevent_c.hub as H
before = caught(signal.SIGCHLD)
hub = H.get_hub()
c = hub.loop.child(0)
c.start(lambda: None)
assert caught(signal.SIGCHLD)
hub.destroy(destroy_loop=True)
assert caught(signal.SIGCHLD) == before
# a fresh hub and child watcher work again
hub = H.get_hub()
import os
c = hub.loop.child(0)
seen = []
c.start(lambda: (seen.append(c.rpid), c.stop()))
pid = os.fork()
if pid == 0:
    os._exit(3)
H.sleep(0.5) if not seen else None
for _ in range(100):
    if seen: break
    H.sleep(0.01)
assert seen == [pid], (seen, pid)
print('ok')
''')
    assert out.strip() == 'ok'


# ---- a signal storm under -X faulthandler ----

STORM = r'''
import os, signal, subprocess, sys, time
import gevent_c.hub as H
assert (sys.flags.dev_mode or __import__('faulthandler').is_enabled()
        or os.environ.get('GEVENT_C_STORM_NO_FAULTHANDLER'))
hub = H.get_hub()
counts = {}
def bump(name):
    counts[name] = counts.get(name, 0) + 1
ws = []
for s in (signal.SIGUSR1, signal.SIGUSR2):
    w = hub.loop.signal(s)
    w.start(bump, int(s))
    ws.append(w)
c = hub.loop.child(0)
c.start(bump, 'chld')
ws.append(c)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
    signal.signal(s, lambda n, f: bump(n))
sender = subprocess.Popen([sys.executable, '-c', """
import os, signal, sys, time
pid = int(sys.argv[1]); end = time.monotonic() + float(sys.argv[2])
sigs = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD,
        signal.SIGINT, signal.SIGTERM, signal.SIGALRM]
n = 0
while time.monotonic() < end:
    for s in sigs:
        os.kill(pid, s)
        n += 1
print(n)
""", str(os.getpid()), '2'], stdout=subprocess.PIPE)
deadline = time.monotonic() + 20
while sender.poll() is None and time.monotonic() < deadline:
    H.sleep(0.0005)
sent = int(sender.communicate()[0])
H.sleep(0.05)
for w in ws:
    w.close()
got = {k: v for k, v in counts.items() if k != 'chld'}
assert set(got) == {2, 10, 12, 14, 15}, counts
print(sent, min(got.values()))
'''


def run_with_flags(flags, code, timeout=45, env=None):
    import subprocess
    import textwrap
    import _util
    return subprocess.run([sys.executable] + flags + ['-c', textwrap.dedent(code)],
                          cwd=_util.TESTS, env=env or _util._clean_env(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.timeout(60)
@pytest.mark.parametrize('flag', ['faulthandler', 'dev'])
def test_signal_storm_under_faulthandler(flag):
    """Handlers used to nest on faulthandler's alternate stack (empty
    sa_mask) until it overflowed: segfault or heap corruption."""
    import _util
    p = run_with_flags(_util.storm_flags(flag), STORM, env=_util.storm_env())
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    sent, least = map(int, p.stdout.split())
    # thousands sent; every kind delivered (coalesced) at least once
    assert sent > 1000 and least >= 1, p.stdout


# ---- every watcher method and setter checks the owner thread ----

def test_watcher_exit_from_another_thread_while_polling(check_py):
    # segfaulted every run: __exit__ closed the timers' libuv handles from
    # the closer thread while the main thread was inside uv_run
    out = check_py('''
import threading, time
import gevent_c.hub as H
hub = H.get_hub()
errors = 0
for rnd in range(5):
    ts = [hub.loop.timer(0.0005 * (i % 7), 0.001) for i in range(400)]
    for t in ts:
        t.start(lambda: None)
    errs = []
    def closer():
        for t in ts:
            try:
                with t:
                    pass
            except RuntimeError as e:
                assert 'polling in another thread' in str(e), e
                errs.append(e)
            time.sleep(0)
    th = threading.Thread(target=closer)
    th.start()
    while th.is_alive():
        H.sleep(0.0005)
    th.join()
    errors += len(errs)
    for t in ts:
        t.close()
        assert not t.active
H.sleep(0.001)
print(errors > 0)
''', timeout=60)
    assert out.strip() == 'True'


def test_every_watcher_setter_checks_the_owner_thread(check_py):
    out = check_py('''
import os, signal, threading, time
import gevent_c.hub as H
hub = H.get_hub()
loop = hub.loop
r, w = os.pipe()
ws = [loop.timer(1), loop.io(r, 1), loop.signal(signal.SIGUSR2), loop.idle(),
      loop.prepare(), loop.check(), loop.fork(), loop.async_(), loop.child(0),
      loop.stat('.')]
values = {'ref': False, 'priority': 1, 'callback': print, 'args': (),
          'fd': r, 'events': 1, 'rpid': 5, 'rstatus': 3}
results = []
polling = threading.Event()
def foreign():
    polling.wait()
    time.sleep(0.05)    # main is inside uv_run now, without the GIL
    for w in ws:
        for name, value in values.items():
            if not hasattr(w, name):
                continue
            before = getattr(w, name)
            try:
                setattr(w, name, value)
            except RuntimeError:
                results.append((type(w).__name__, name, getattr(w, name) == before))
            else:
                results.append((type(w).__name__, name, 'set'))
        try:
            w.__exit__(None, None, None)
        except RuntimeError:
            results.append((type(w).__name__, '__exit__', True))
    for name in ('ref', 'unref', 'break_'):
        try:
            getattr(loop, name)()
        except RuntimeError:
            results.append(('loop', name, True))
        else:
            results.append(('loop', name, 'called'))
th = threading.Thread(target=foreign)
th.start()
polling.set()
t = loop.timer(0.02, 0.02)
t.start(lambda: None)
while th.is_alive():
    loop.run(once=True)
th.join()
bad = [x for x in results if x[2] is not True]
assert not bad, bad
assert len(results) > 40, results
for w in ws:
    w.close()
print('ok')
''', timeout=30)
    assert out.strip() == 'ok'


def test_run_callback_from_another_thread_wakes_the_loop(check_py):
    out = check_py('''
import threading, time
import gevent_c.hub as H
hub = H.get_hub()
waiter = H.Waiter()
def other():
    time.sleep(0.1)
    hub.loop.run_callback(waiter.switch, 'woken')
threading.Thread(target=other).start()
t0 = time.monotonic()
guard = hub.loop.timer(5)
guard.start(waiter.switch, 'timeout')
res = waiter.get()
guard.close()
print(res, time.monotonic() - t0 < 3)
''')
    assert out.split() == ['woken', 'True']


# ---- Waiter(hub) takes None or a Hub, as compiled gevent does ----

def test_waiter_rejects_a_hub_that_is_not_a_hub():
    import greenlet
    from gevent_c.hub import Waiter, get_hub, getcurrent
    ran = []
    g = greenlet.greenlet(lambda: ran.append(1) or 'result')
    for bad in (g, getcurrent(), 42, object()):
        with pytest.raises(TypeError, match="argument 'hub' must be"):
            Waiter(bad)
        with pytest.raises(TypeError, match="argument 'hub' must be"):
            Waiter(hub=bad)

    class SubWaiter(Waiter):
        pass
    with pytest.raises(TypeError):
        SubWaiter(g)
    assert ran == [] and not g.dead     # the greenlet was never run
    hub = get_hub()
    assert Waiter().hub is hub and Waiter(None).hub is hub
    assert Waiter(hub).hub is hub and SubWaiter(hub=hub).hub is hub


# ---- a ThreadPool used before (or after a failed) __init__ ----

def test_threadpool_before_init_raises(check_py):
    out = check_py('''
from gevent_c._hub import ThreadPoolBase
from gevent_c.threadpool import ThreadPool
p = ThreadPoolBase.__new__(ThreadPoolBase)
calls = [lambda: p.size, p.kill, p.adjust, lambda: setattr(p, 'maxsize', 3),
         lambda: setattr(p, 'size', 1), lambda: p.spawn(print), p._drain, p._on_fork,
         lambda: p._submit(print, (), None), lambda: p._hub_thread_ident]
for f in calls:
    try:
        f()
    except RuntimeError as e:
        assert 'was not called or failed' in str(e), e
    else:
        raise AssertionError(f)
assert len(p) == 0 and p.hub is None

class Failing(ThreadPool):
    def __init__(self, fail_late):
        if fail_late:
            super().__init__(2, hub=42)     # fails inside the C __init__
        raise ValueError('boom')
for late in (False, True):
    try:
        Failing(late)
    except (ValueError, AttributeError):
        pass
    f = Failing.__new__(Failing)
    try:
        f.__init__(late)
    except (ValueError, AttributeError):
        pass
    assert 'not initialised' in repr(f)
    for g in (lambda: f.apply(abs, (-1,)), lambda: f.map(abs, [1]), lambda: f.spawn(abs, 1),
              f.kill, lambda: f.size):
        try:
            g()
        except RuntimeError:
            pass
        else:
            raise AssertionError(g)
    f.join()   # nothing outstanding: returns
ok = ThreadPool(2)
try:
    ok.__init__(2)
except RuntimeError:
    pass
assert ok.apply(abs, (-3,)) == 3
print('ok')
''')
    assert out.strip() == 'ok'


# ---- a plain fork() (no reinit()) with a pool task in flight ----

def test_fork_without_reinit_with_a_task_in_flight(check_py):
    out = check_py('''
import os, signal, threading, time
import gevent_c.hub as H
hub = H.get_hub()
pool = hub.threadpool
started = threading.Event()

def task():
    started.set()
    time.sleep(0.3)

r = pool.spawn(task)
# fork once the worker runs the task, not while it starts (see test_fork_matrix.wait_started)
assert started.wait(10)
pid = os.fork()
if pid == 0:
    signal.alarm(10)
    try:
        ok = hub.join(timeout=1)
        res = pool.apply(abs, (-4,))
        code = 0 if (ok is True and res == 4 and len(pool) == 0) else 3
    except BaseException:
        import traceback; traceback.print_exc()
        code = 4
    os._exit(code)
_, st = os.waitpid(pid, 0)
r.get()
print(os.waitstatus_to_exitcode(st))
''')
    assert out.strip() == '0'
