"""Foreign-thread sweep: every public method and settable
attribute of the hub's objects, called from another thread while the owner's
loop polls.

A hub and its loop are not thread-safe (docs/semantics.md, 'Hub lookup'): from another thread only
``loop.run_callback_threadsafe`` and ``async_.send()`` may be called.  Every
other entry point either works harmlessly or raises a defined exception; none
may crash the process, and the owner's hub must keep working afterwards.

The members are found by introspection (``dir()`` of each object's type), so
a new method or property is swept without editing this file.  Arguments come
from a small table keyed by name; a name not in the table is called without
arguments (a ``TypeError`` for the arity is a defined error).  Each type is
swept in its own subprocess, so a crash names the type.
"""
import subprocess
import sys
import textwrap

import pytest

import _util

# Names whose call would legitimately end or fork the process: none today.
# Each entry: name -> reason.
SKIP = {}

SWEEP = r'''
import io, json, os, signal, socket, sys, threading, time, inspect, traceback
import greenlet
import gevent_c.hub as H
import gevent_c.core as core
import gevent_c.exceptions as gexc

KIND = sys.argv[1]
REPEAT = int(sys.argv[2])
SKIP = set(json.loads(sys.argv[3]))

hub = H.get_hub()
loop = hub.loop
hub.exception_stream = io.StringIO()    # handle_error from the sweep prints here

signal.signal(signal.SIGUSR2, lambda *a: None)
r, w = os.pipe()
spare_r, spare_w = os.pipe()            # for closing_fd(): never watched
import subprocess
sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
pid = sleeper.pid


class SweepError(Exception):
    """Thrown by the sweep into the owner's greenlets (through throw /
    handle_system_error): the owner catches it."""


def noop(*args, **kwargs):
    return None


# AssertionError: gevent's own misuse checks (Hub.run 'Do not call Hub.run()
# directly', Hub.join 'only possible from the MAIN greenlet'), kept for
# compatibility; BlockingSwitchOutError and friends derive from it too.
DEFINED = (RuntimeError, TypeError, ValueError, AttributeError, OSError,
           AssertionError, greenlet.error, SweepError,
           gexc.LoopExit, gexc.BlockingSwitchOutError, gexc.InvalidSwitchError,
           gexc.ConcurrentObjectUseError, gexc.InvalidThreadUseError)

# Documented as callable from any thread (docs/semantics.md, docs/design.md).
THREADSAFE = {('loop', 'run_callback_threadsafe'), ('async_', 'send'),
              ('async_', 'send_ignoring_arg')}

# The factories: make() returns one fresh object, owned by this (main)
# thread, started where that applies.
WATCHERS = {
    'timer': lambda: loop.timer(10, 10),
    'io': lambda: loop.io(r, core.READ),
    'signal': lambda: loop.signal(signal.SIGUSR2),
    'idle': loop.idle, 'prepare': loop.prepare, 'check': loop.check,
    'async_': loop.async_, 'fork': loop.fork,
    'child': lambda: loop.child(pid),
    'stat': lambda: loop.stat('/', 10.0),
}


def make():
    if KIND in WATCHERS:
        wt = WATCHERS[KIND]()
        wt.start(noop)
        return wt
    if KIND == 'callback':
        return loop.run_callback(noop)
    if KIND == 'Hub':
        return hub
    if KIND == 'loop':
        return loop
    if KIND == 'Waiter':
        return H.Waiter(hub)
    if KIND == 'ThreadPool':
        from gevent_c.threadpool import ThreadPool
        pool = ThreadPool(2)
        pool.spawn(time.sleep, 0.002)   # a task in flight
        return pool
    if KIND == 'resolver_thread':
        from gevent_c.resolver_thread import Resolver
        return Resolver(hub)
    if KIND == 'resolver_ares':
        from gevent_c.resolver_ares import Resolver
        return Resolver(hub, servers=['127.0.0.1:9'], timeout=0.05, tries=1)
    if KIND == 'BlockingResolver':
        from gevent_c.socket import BlockingResolver
        return BlockingResolver(hub)
    raise AssertionError(KIND)


def spare_timer():
    return loop.timer(10)


# Plausible arguments per name ((kind, name) first, then name).
ARGS = {
    'start': lambda: (noop,),
    '__exit__': lambda: (None, None, None),
    'run_callback': lambda: (noop,),
    'run_callback_threadsafe': lambda: (noop,),
    'timer': lambda: (10,),
    'io': lambda: (r, core.READ),
    'signal': lambda: (signal.SIGUSR2,),
    'child': lambda: (pid,),
    'stat': lambda: ('/', 10.0),
    'closing_fd': lambda: (spare_r,),
    ('loop', 'run'): lambda: (True,),             # nowait: bounded either way
    ('io', 'recv_into'): lambda: (bytearray(4),),
    ('io', 'send'): lambda: (b'x',),
    ('loop', 'handle_error'): lambda: ('ctx', SweepError, SweepError('x'), None),
    ('Hub', 'switch'): lambda: (),
    ('Hub', 'throw'): lambda: (SweepError,),
    ('Hub', 'wait'): lambda: (spare_timer(),),
    ('Hub', 'cancel_wait'): lambda: (spare_timer(), SweepError('x')),
    ('Hub', '_cancel_wait'): lambda: (spare_timer(), SweepError('x'), False),
    ('Hub', 'handle_error'): lambda: ('ctx', SweepError, SweepError('x'), None),
    ('Hub', 'handle_system_error'): lambda: (SweepError, SweepError('x'), None),
    ('Hub', 'print_exception'): lambda: ('ctx', SweepError, SweepError('x'), None),
    ('Hub', 'join'): lambda: (0.01,),
    ('Hub', 'settrace'): lambda: (None,),
    ('Waiter', 'switch'): lambda: (1,),
    ('Waiter', '__call__'): lambda: (1,),
    ('Waiter', 'switch_args'): lambda: (1, 2),
    ('Waiter', 'throw'): lambda: (SweepError,),
    ('ThreadPool', 'spawn'): lambda: (noop,),
    ('ThreadPool', '_submit'): lambda: (noop, (), {}, None),
    ('ThreadPool', 'apply'): lambda: (noop,),
    ('ThreadPool', 'apply_e'): lambda: ((), noop),
    ('ThreadPool', 'apply_cb'): lambda: (noop,),
    ('ThreadPool', 'apply_async'): lambda: (noop,),
    ('ThreadPool', 'map'): lambda: (noop, [1]),
    ('ThreadPool', 'map_cb'): lambda: (noop, [1]),
    ('ThreadPool', 'map_async'): lambda: (noop, [1]),
    'gethostbyname': lambda: ('127.0.0.1',),
    'gethostbyname_ex': lambda: ('127.0.0.1',),
    'getaddrinfo': lambda: ('127.0.0.1', 80),
    'gethostbyaddr': lambda: ('127.0.0.1',),
    'getnameinfo': lambda: (('127.0.0.1', 80), socket.NI_NUMERICHOST),
    '_query': lambda: ('gethostbyname', b'127.0.0.1', socket.AF_INET),
}
# What ends an object (or the owner's hub) is called last.
LAST = ('__exit__', 'close', 'stop', 'kill', 'destroy')
KEEP_DUNDER = ('__enter__', '__exit__', '__call__', '__repr__')


def members(obj):
    """(name, 'method'|'attr') for every public member of type(obj)."""
    out = []
    for name in dir(type(obj)):
        if name.startswith('__') and name not in KEEP_DUNDER:
            continue
        if name in SKIP:
            continue
        static = inspect.getattr_static(type(obj), name)
        if isinstance(static, property):
            if static.fset is not None:
                out.append((name, 'attr'))
            else:
                out.append((name, 'get'))
        elif hasattr(type(static), '__set__'):
            out.append((name, 'attr'))        # getset/member descriptors
        elif callable(static) or isinstance(static, (staticmethod, classmethod)):
            out.append((name, 'method'))
    out.sort(key=lambda m: (m[0] in LAST, m[0]))
    return out


def args_for(name):
    f = ARGS.get((KIND, name)) or ARGS.get(name)
    return f() if f is not None else ()


single = KIND in ('Hub', 'loop')
probe = make()
todo = []                                   # (name, how, obj, args)
for name, how in members(probe):
    for i in range(1 if single else REPEAT):
        obj = probe if single else make()
        todo.append((name, how, obj, args_for(name) if how == 'method' else None))

outcomes = {}
undefined = []
done = threading.Event()
current = [None]
polls = [0]


def record(key, outcome):
    outcomes.setdefault(key, set()).add(outcome)


def foreign():
    try:
        for name, how, obj, args in todo:
            if done.is_set():
                break
            current[0] = name
            if how == 'method':
                steps = [(name, lambda: getattr(obj, name)(*args))]
            else:
                steps = [(name + ' (get)', lambda: getattr(obj, name))]
                if how == 'attr':
                    # set the value it has: plausible for every attribute
                    steps.append((name + ' (set)',
                                  lambda: setattr(obj, name, getattr(obj, name))))
            for key, step in steps:
                try:
                    step()
                    record(key, 'ok')
                except DEFINED as ex:
                    record(key, type(ex).__name__)
                except BaseException as ex:
                    record(key, type(ex).__name__)
                    undefined.append('%s: %s' % (key, traceback.format_exc()))
            # let the owner poll at least once after each call, so that the
            # next call lands while it polls and a broken owner names the call
            target = polls[0] + 2
            deadline = time.monotonic() + 1.0
            while polls[0] < target and time.monotonic() < deadline and not done.is_set():
                time.sleep(0.0002)
    finally:
        done.set()


def report(owner_error=None):
    print(json.dumps({'outcomes': {k: sorted(v) for k, v in outcomes.items()},
                      'undefined': undefined, 'thrown': thrown,
                      'owner_error': owner_error}))
    sys.stdout.flush()


t = threading.Thread(target=foreign, daemon=True)
t.start()
thrown = 0
try:
    for step in range(200000):              # the owner polls in small steps
        if done.is_set():
            break
        try:
            H.sleep(0.0005)
        except SweepError:
            thrown += 1
        polls[0] += 1
    t.join(60)
    assert not t.is_alive(), 'the foreign thread hangs in %r' % (current[0],)

    # The owner's hub keeps working: sleep, a timer, a Waiter round trip, and
    # a wake-up from another thread.
    H.sleep(0.01)
    tm = loop.timer(0.001)
    hub.wait(tm)
    tm.close()
    wt = H.Waiter(hub)
    loop.run_callback(wt.switch, 'round trip')
    assert wt.get() == 'round trip'
    wt = H.Waiter(hub)
    threading.Thread(target=loop.run_callback_threadsafe, args=(wt.switch, 'ts')).start()
    assert wt.get() == 'ts'
except BaseException as ex:
    done.set()
    report('owner failed after the foreign call %r: %s: %s'
           % (current[0], type(ex).__name__, ex))
    sleeper.kill()
    os._exit(1)
sleeper.kill()
report()
os._exit(0)     # the outcomes are printed; do not let a broken object's
                # finalizer at exit hide them (the exit path has its own tests)
'''

KINDS = ['Hub', 'loop', 'timer', 'io', 'signal', 'idle', 'prepare', 'check', 'async_',
         'fork', 'child', 'stat', 'callback', 'Waiter', 'ThreadPool', 'resolver_thread',
         'resolver_ares', 'BlockingResolver']


def _have_ares():
    try:
        import gevent_c.resolver_ares  # noqa: F401
    except ImportError:
        return False
    return True


def run_sweep(code, *args, timeout=90):
    return subprocess.run(
        [sys.executable, '-X', 'faulthandler', '-c', textwrap.dedent(code)] + list(args),
        cwd=_util.TESTS, env=_util._clean_env(), capture_output=True, text=True,
        timeout=timeout)


@pytest.mark.timeout(120)
@pytest.mark.parametrize('kind', KINDS)
def test_foreign_thread_sweep(kind):
    import json
    if kind == 'resolver_ares' and not _have_ares():
        pytest.skip('gevent_c.resolver_ares is not importable')
    repeat = 3 if kind in ('ThreadPool', 'resolver_ares') else 20
    p = run_sweep(SWEEP, kind, str(repeat), json.dumps(sorted(SKIP)))
    assert p.returncode in (0, 1), 'sweep of %s crashed: exit %r\n--- stderr ---\n%s' % (
        kind, p.returncode, p.stderr[-6000:])
    assert p.stdout.strip(), 'sweep of %s exited %r\n%s' % (kind, p.returncode, p.stderr[-6000:])
    report = json.loads(p.stdout)
    assert report['owner_error'] is None, report['owner_error']
    assert p.returncode == 0 and p.stderr == '', p.stderr[-6000:]
    assert report['outcomes'], 'nothing was swept'
    assert report['undefined'] == [], ''.join(report['undefined'])


ITEM5 = r'''
import threading
import gevent_c.hub as H

hub = H.get_hub()
timers = []
for i in range(400):
    t = hub.loop.timer(0.001 * (i % 50), 0.001)
    t.start(lambda: None)
    timers.append(t)
errors = []
done = threading.Event()


def closer():
    for t in timers:
        try:
            t.__exit__(None, None, None)
        except RuntimeError as ex:
            errors.append(ex)
    done.set()


th = threading.Thread(target=closer)
th.start()
for _ in range(100000):
    if done.is_set():
        break
    H.sleep(0.0005)
th.join(30)
assert not th.is_alive()
# the owner closes them itself; its hub still works
for t in timers:
    t.close()
    assert not t.active
w = H.Waiter(hub)
hub.loop.run_callback(w.switch, 42)
assert w.get() == 42
H.sleep(0.001)
print('ok', len(errors))
'''


@pytest.mark.timeout(120)
@pytest.mark.parametrize('run', range(3))
def test_item5_exit_from_thread_while_polling(run):
    '''400 timers closed through ``__exit__`` from
    a thread while the main thread sleeps in 0.5 ms steps (it segfaulted in 5
    of 5 runs).  Each ``__exit__`` either closes its timer (the owner was not
    polling at that moment) or raises RuntimeError; nothing crashes.'''
    p = run_sweep(ITEM5)
    assert p.returncode == 0, 'exited %r\n%s' % (p.returncode, p.stderr[-6000:])
    assert p.stderr == '', p.stderr
    assert p.stdout.startswith('ok '), p.stdout


# The owner blocks in one long poll (GIL released) while the thread acts, then
# the thread wakes it with run_callback_threadsafe: every call below lands
# while the loop polls, deterministically.
WHILE_POLLING = r'''
import sys, threading, time
import gevent_c.hub as H

hub = H.get_hub()
loop = hub.loop
guard = loop.timer(30)
guard.start(lambda: None)
timers = [loop.timer(10) for _ in range(400)]
for t in timers:
    t.start(lambda: None)
res = {}


def outcome(f):
    try:
        f()
        return 'ok'
    except BaseException as ex:
        return type(ex).__name__


def foreign(w):
    time.sleep(0.1)                     # the owner is in epoll_wait by now
    res['close'] = outcome(timers[0].close)
    res['ref'] = outcome(lambda: setattr(timers[1], 'ref', False))
    res['priority'] = outcome(lambda: setattr(timers[2], 'priority', 1))
    res['__exit__'] = sorted(set(outcome(lambda t=t: t.__exit__(None, None, None))
                                 for t in timers[3:]))
    loop.run_callback_threadsafe(w.switch, 'woken')


w = H.Waiter(hub)
threading.Thread(target=foreign, args=(w,)).start()
assert w.get() == 'woken'
for t in timers:
    t.close()
guard.close()
H.sleep(0.001)
print(sorted(res.items()))
'''


@pytest.mark.timeout(60)
def test_item5_exit_and_setters_check_owner_while_polling():
    '''``__exit__`` is a method like ``close()``, and the
    ``ref`` and ``priority`` setters write status bits the loop thread writes
    without the GIL: called from another thread while the loop polls, each
    raises RuntimeError like ``close()`` does (``priority`` on an active
    watcher may raise AttributeError, libev's rule, first).'''
    p = run_sweep(WHILE_POLLING)
    assert p.returncode == 0, 'exited %r\n%s' % (p.returncode, p.stderr[-6000:])
    assert p.stderr == '', p.stderr
    res = dict(eval(p.stdout))
    assert res['close'] == 'RuntimeError', res
    assert res['__exit__'] == ['RuntimeError'], res
    assert res['ref'] == 'RuntimeError', res
    assert res['priority'] in ('RuntimeError', 'AttributeError'), res
