"""Constructed-but-not-initialised sweep: every public type of
gevent_c, created with ``T.__new__(T)`` (``__init__`` never ran) and, for
subclassable types, through a subclass whose ``__init__`` raises; then every
method is called and every attribute read, written and deleted, and the object
is dropped (``del`` + ``gc.collect()``).  Each step may raise; none may crash.

The types are found by walking the public modules, so a new type is swept
without editing this file.  Each type runs in its own subprocess, so a crash
names the type.
"""
import subprocess
import sys
import textwrap

import pytest

import _util

MODULES = ['gevent_c.hub', 'gevent_c.core', 'gevent_c._hub', 'gevent_c.threadpool',
           'gevent_c.resolver_thread', 'gevent_c.resolver_ares', 'gevent_c._ares',
           'gevent_c.socket', 'gevent_c.event', 'gevent_c.timeout',
           'gevent_c.exceptions', 'gevent_c.gevent_loop']


def _public_types():
    """'module:qualname' of every class defined by gevent_c that the public
    modules expose (each type once, under the first module that has it)."""
    import importlib
    seen = {}
    for modname in MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        for name in sorted(dir(mod)):
            obj = getattr(mod, name)
            if not isinstance(obj, type) or name.startswith('__'):
                continue
            if not (getattr(obj, '__module__', '') or '').startswith('gevent_c'):
                continue
            seen.setdefault(obj, '%s:%s' % (modname, name))
    return sorted(seen.values())


TYPES = _public_types()

SWEEP = r'''
import gc, importlib, io, os, signal, sys, threading, traceback

modname, _, qualname = sys.argv[1].partition(':')
T = getattr(importlib.import_module(modname), qualname)
# No method may end or fork the process here; none of the swept names does
# today (a name would be listed here with its reason).
SKIP = {'__new__', '__init__', '__init_subclass__', '__subclasshook__', '__class__',
        '__getattribute__', '__setattr__', '__delattr__', '__dir__',
        '__reduce__', '__reduce_ex__', '__getstate__', '__sizeof__', '__format__'}


def noop(*args, **kwargs):
    return None


r, w = os.pipe()
ARGS = {
    'start': (noop,), 'run_callback': (noop,), 'run_callback_threadsafe': (noop,),
    'spawn': (noop,), 'apply': (noop,), '_submit': (noop, (), {}, None),
    '__exit__': (None, None, None), 'switch': (1,), 'throw': (ValueError,),
    'timer': (10,), 'io': (r, 1), 'signal': (signal.SIGUSR2,), 'stat': ('/', 10.0),
    'child': (os.getpid(),), 'closing_fd': (r,), 'join': (0.01,), 'recv_into': (bytearray(4),),
    'handle_error': ('ctx', ValueError, ValueError('x'), None),
    'print_exception': ('ctx', ValueError, ValueError('x'), None),
    'gethostbyname': ('127.0.0.1',), 'getaddrinfo': ('127.0.0.1', 80),
    'rawlink': (noop,), 'unlink': (noop,), 'set': (1,), 'wait': (0.01,),
    'get': (True, 0.01), 'result': (0.01,),
    '__eq__': (1,), '__ne__': (1,), '__lt__': (1,), '__le__': (1,), '__gt__': (1,),
    '__ge__': (1,),
}
signal.signal(signal.SIGUSR2, lambda *a: None)
outcomes = []


def attempt(what, f):
    os.write(1, ('%s\n' % what).encode())    # a crash names its step: the last line
    quiet = what.endswith(('handle_error()', 'print_exception()'))
    saved = sys.stderr
    if quiet:                                  # these print the error they are given
        sys.stderr = io.StringIO()
    try:
        f()
        outcomes.append((what, 'ok'))
    except BaseException as ex:     # any exception is a defined outcome here
        if isinstance(ex, (KeyboardInterrupt, SystemExit)):
            raise
        outcomes.append((what, type(ex).__name__))
    finally:
        sys.stderr = saved


def exercise(obj, label):
    tp = type(obj)
    names = [n for n in dir(tp) if n not in SKIP]
    descrs = {}
    for n in names:
        for klass in tp.__mro__:
            if n in vars(klass):
                descrs[n] = vars(klass)[n]
                break
    # attributes: get, set (the value read, None, 0), delete
    for n, d in descrs.items():
        if not hasattr(type(d), '__set__') or isinstance(d, type):
            continue
        got = []
        attempt('%s.%s get' % (label, n), lambda: got.append(getattr(obj, n)))
        for v in got[:1] + [None, 0]:
            attempt('%s.%s set' % (label, n), lambda: setattr(obj, n, v))
        attempt('%s.%s del' % (label, n), lambda: delattr(obj, n))
    # methods: each with a plausible argument tuple, else none
    for n, d in descrs.items():
        if hasattr(type(d), '__set__'):
            continue
        try:
            m = getattr(obj, n)
        except BaseException as ex:
            outcomes.append(('%s.%s getattr' % (label, n), type(ex).__name__))
            continue
        if not callable(m) or isinstance(m, type):
            continue
        attempt('%s.%s()' % (label, n), lambda: m(*ARGS.get(n, ())))
    for f in (repr, str, hash, bool, len, iter):
        attempt('%s %s()' % (label, f.__name__), lambda: f(obj))


# 1. T.__new__(T)
try:
    obj = T.__new__(T)
except BaseException as ex:
    outcomes.append(('__new__', type(ex).__name__))
    obj = None
if obj is not None:
    exercise(obj, 'new')
    del obj
    gc.collect()

# 2. a subclass whose __init__ raises: dropped at once, and kept and swept
held = []
try:
    class S(T):
        def __init__(self, *args, **kwargs):
            held.append(self)
            raise ValueError('no init')
except TypeError as ex:             # not an acceptable base type
    outcomes.append(('subclass', 'TypeError'))
else:
    for i in range(2):
        try:
            S()
        except ValueError:
            pass
        except BaseException as ex:
            outcomes.append(('S()', type(ex).__name__))
        if i == 0:
            del held[:]
            gc.collect()
    for obj in held:
        exercise(obj, 'sub')
    del held[:], obj
    gc.collect()

gc.collect()
sys.stdout.flush()
print('swept', len(outcomes))
sys.stdout.flush()
'''


def _run(code, *args, timeout=60):
    return subprocess.run(
        [sys.executable, '-X', 'faulthandler', '-c', textwrap.dedent(code)] + list(args),
        cwd=_util.TESTS, env=_util._clean_env(), capture_output=True, text=True,
        timeout=timeout)


def test_types_found():
    """The walk finds the C types (so an empty sweep cannot pass)."""
    names = {t.rpartition(':')[2] for t in TYPES}
    assert {'Hub', 'Waiter', 'loop', 'timer', 'callback', 'ThreadPoolBase'} <= names, TYPES


@pytest.mark.timeout(90)
@pytest.mark.parametrize('typename', TYPES)
def test_uninitialised_sweep(typename):
    p = _run(SWEEP, typename)
    last = (p.stdout.strip().splitlines() or [''])[-1]
    assert p.returncode == 0, 'sweep of %s exited %r in step %r\n--- stderr ---\n%s' % (
        typename, p.returncode, last, p.stderr[-6000:])
    assert p.stderr == '', p.stderr[-6000:]
    assert last.startswith('swept ') and int(last.split()[1]) > 0, last


ITEM3 = {
    'size': 'pool.size',
    'kill': 'pool.kill()',
    'adjust': 'pool.adjust()',
    'maxsize': 'pool.maxsize = 3',
    'spawn': 'pool.spawn(len, ())',
    'len': 'len(pool)',
    'subclass_init_fails': None,
}

ITEM3_CODE = r'''
import gc
from gevent_c._hub import ThreadPoolBase
pool = ThreadPoolBase.__new__(ThreadPoolBase)
try:
    %s
except Exception as ex:
    print(type(ex).__name__)
else:
    print('no exception')
del pool
gc.collect()
'''

ITEM3_SUBCLASS = r'''
import gc
from gevent_c._hub import ThreadPoolBase
held = []
class P(ThreadPoolBase):
    def __init__(self, *a, **k):
        held.append(self)
        raise ValueError
try:
    P()
except ValueError:
    pass
pool = held.pop()
out = []
for f in (lambda: pool.size, pool.kill, pool.adjust, lambda: setattr(pool, 'maxsize', 3)):
    try:
        f()
        out.append('ok')
    except Exception as ex:
        out.append(type(ex).__name__)
print(out)
del pool
gc.collect()
'''


@pytest.mark.parametrize('op', sorted(ITEM3))
def test_item3_threadpool_uninitialised(op):
    """``ThreadPoolBase.__new__(ThreadPoolBase).size``
    segfaulted (also ``kill()``, ``adjust()``, setting ``maxsize``, and a
    subclass whose ``__init__`` fails): each raises an exception instead
    (gevent_c chooses the exception; here any ``Exception`` is accepted;
    ``kill()`` and ``len()`` of a pool that never started may also do
    nothing)."""
    code = ITEM3_SUBCLASS if ITEM3[op] is None else ITEM3_CODE % ITEM3[op]
    p = _run(code)
    assert p.returncode == 0, 'exited %r\n%s' % (p.returncode, p.stderr[-6000:])
    assert p.stderr == '', p.stderr
    if op in ('size', 'adjust', 'maxsize', 'spawn'):
        # these need the state __init__ makes: an exception, not a made-up value
        assert p.stdout.strip() != 'no exception', p.stdout
    elif op == 'subclass_init_fails':
        assert "'ok', 'ok'" not in p.stdout, p.stdout
