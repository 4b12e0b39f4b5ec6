#!/usr/bin/env python3
"""A stateful fuzzer (Hypothesis ``RuleBasedStateMachine``) that throws
hostile Python objects at the whole gevent_c API.

The rules drive the hub, loops (the hub's and private ones), every watcher
type, ``run_callback``, ``Waiter``, greenlets, the thread pool, the
resolvers, signals, a second thread and fork.  The objects they pass
(callbacks, arguments, values, exceptions, streams, paths, numbers) are
*hostile*: one of their special methods (``__del__``, ``__repr__``,
``__eq__``, ``__hash__``, ``__call__``, ``__str__``, ``__float__``,
``__index__``, ``__bool__``, ``__fspath__``) closes or stops a watcher,
destroys a loop or the hub, switches greenlets, runs ``gc.collect()``,
lists the loop's handles or raises an exception whose ``__str__`` is itself
broken.  The machine keeps no reference to a callback it handed over, so
replacing one runs its finalizer inside the call that replaced it.  A rule
can also leave garbage cycles with such finalizers behind and lower the GC
threshold, so that collections (and the finalizers) run at any allocation
inside C.

What must never happen: a crash (death by a signal), an abort, a hang, an
exception of a type that means a bug in C (``SystemError``, an exception
that is not an ``Exception``), and, after every example, a hub that no
longer works (a fresh one if the old one was destroyed: ``sleep(0)`` and a
timer round trip).

usage (from tests/):
    python fuzz_hostile.py --seed 3 --examples 20 --steps 40 [--log FILE]
    python fuzz_hostile.py --replay FILE    # the steps of the last example in a log
    python fuzz_hostile.py --minimize FILE  # shrink a crashing example (subprocesses)

Every step is written (and flushed) to --log as ``rule(kw=...)`` before it
runs, so when the process dies the log's last example is the reproduction;
``--replay`` runs those steps again without Hypothesis, and ``--minimize``
removes steps while the replay still dies the same way, then prints a
standalone script.  On success the last stdout line is ``FUZZ HOSTILE OK``.
Exit status: 0 ok, 1 an invariant failed (Python-level, Hypothesis prints
the example), 3 a step hung (faulthandler dumps the stacks), a negative
status a signal.
"""
import argparse
import collections
import faulthandler
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref

import greenlet

import gevent_c.core as core
import gevent_c.hub as H
from gevent_c.threadpool import ThreadPool

import _util

# helpers shared with the API fuzzer (a script in tests/reliability/)
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reliability'))
from fuzz_api import close_all, parse_seeds  # noqa: E402

try:
    import gevent_c.resolver_ares as resolver_ares
    import gevent_c._ares  # noqa: F401
except ImportError:
    resolver_ares = None

# Hypothesis is imported lazily (replay/minimize do not need it).

# ---------------------------------------------------------------------------
# hostile objects

TRIGGERS = ('__del__', '__repr__', '__eq__', '__hash__', '__call__', '__str__', '__float__',
            '__index__', '__bool__', '__fspath__', 'never')
ACTIONS = ('close_own', 'stop_own', 'destroy_own_loop', 'destroy_hub_loop', 'destroy_hub',
           'close_any', 'destroy_any_loop', 'gc', 'sleep0', 'switch_greenlet', 'debug',
           'raise', 'start_own', 'run_callback', 'kill_pool', 'nothing', 'run_own_loop',
           'reinit', 'break', 'new_watcher', 'throw_main', 'closing_fd',
           'stop_all', 'wait_own')


class Spec(collections.namedtuple('Spec', 'trigger action target')):
    """What a hostile object does: on ``trigger`` it runs ``action``;
    ``target`` picks among the machine's watchers/loops for the *_any
    actions."""
    __slots__ = ()


class HostileError(Exception):
    """Raised by the 'raise' action; its __str__ and __repr__ are broken."""

    def __str__(self):
        # formatting it first runs its argument's hostile side (if any)
        for a in self.args:
            if isinstance(a, Hostile):
                a._fire('__str__')
        raise HostileError.Broken('broken __str__')

    def __repr__(self):
        for a in self.args:
            if isinstance(a, Hostile):
                a._fire('__repr__')
        raise HostileError.Broken('broken __repr__')

    class Broken(Exception):
        pass


class GuardTimeout(BaseException):
    """Thrown into main by the guard timer that bounds every blocking call."""


# GEVENT_C_HOSTILE_EXCLUDE=reinit,wait_own: hostile actions that do nothing (to
# look past a known bug, or to find which action a failure needs)
EXCLUDE = set(filter(None, os.environ.get('GEVENT_C_HOSTILE_EXCLUDE', '').split(',')))
MACHINE = None          # the running machine: hostile actions find their targets here
ACTION_DEPTH = [0]      # hostile actions nest at most this deep
HITS = collections.Counter()


def _owner_loop(owner):
    if owner is None:
        return None
    if isinstance(owner, core.loop):
        return owner
    try:
        return owner.loop
    except Exception:
        return None


def do_action(action, owner, target):
    """Run one hostile action.  Any exception it raises propagates into
    whatever called the special method (that is the point)."""
    m = MACHINE
    if m is None or ACTION_DEPTH[0] > 2 or action in EXCLUDE:
        return
    HITS[action] += 1
    ACTION_DEPTH[0] += 1
    try:
        if action == 'close_own':
            if owner is not None and not isinstance(owner, core.loop):
                owner.close()
        elif action == 'stop_own':
            if owner is not None and not isinstance(owner, core.loop):
                owner.stop()
        elif action == 'start_own':
            if owner is not None and not isinstance(owner, core.loop):
                owner.start(noop)
        elif action == 'destroy_own_loop':
            lp = _owner_loop(owner)
            if lp is not None:
                lp.destroy()
        elif action == 'destroy_hub_loop':
            hub = H.get_hub_if_exists()
            if hub is not None and hub.loop is not None:
                hub.loop.destroy()
        elif action == 'destroy_hub':
            hub = H.get_hub_if_exists()
            if hub is not None:
                hub.destroy(target % 2 == 0)
        elif action == 'close_any':
            w = m.pick(m.watchers, target)
            if w is not None:
                w.close()
        elif action == 'destroy_any_loop':
            lp = m.pick(m.loops, target)
            if lp is not None:
                lp.destroy()
        elif action == 'gc':
            gc.collect()
        elif action == 'sleep0':
            H.sleep(0)
        elif action == 'switch_greenlet':
            # a greenlet that acts on the owner and dies, switched to from here
            g = greenlet.greenlet(lambda: do_action(
                ('close_own', 'destroy_own_loop', 'sleep0', 'gc')[target % 4], owner, target))
            g.switch()
        elif action == 'debug':
            lp = _owner_loop(owner) or m.pick(m.loops, target)
            if lp is not None:
                lp.debug()
        elif action == 'raise':
            raise HostileError(action)
        elif action == 'run_callback':
            lp = _owner_loop(owner) or m.hub_loop()
            if lp is not None:
                lp.run_callback(noop)
        elif action == 'kill_pool':
            p = m.pick(m.pools, target)
            if p is not None:
                p.kill()
        elif action == 'run_own_loop':
            # a re-entrant run of the loop (maybe from inside its dispatch)
            lp = _owner_loop(owner) or m.hub_loop()
            if lp is not None:
                lp.run(nowait=True)
        elif action == 'reinit':
            lp = _owner_loop(owner) or m.hub_loop()
            if lp is not None:
                lp.reinit()
        elif action == 'break':
            lp = _owner_loop(owner) or m.hub_loop()
            if lp is not None:
                lp.break_()
        elif action == 'new_watcher':
            lp = _owner_loop(owner) or m.hub_loop()
            if lp is not None:
                w = getattr(lp, ('idle', 'timer', 'prepare', 'check')[target % 4])(
                    *((0,) if target % 4 == 1 else ()))
                w.start(noop)
                m.watchers.append(w)
        elif action == 'throw_main':
            # not from the hub: a hub suspended inside a finalizer swallows
            # what is thrown into it there (CPython ignores exceptions from
            # __del__), so destroy()'s HubDestroyed is lost and destroy()
            # waits for the hub forever, in gevent as here
            cur = greenlet.getcurrent()
            if cur is not m.main and not isinstance(cur, H.HubCore) and not m.main.dead:
                m.main.throw(HostileError('thrown into main'))
        elif action == 'closing_fd':
            lp = _owner_loop(owner) or m.hub_loop()
            if lp is not None:
                lp.closing_fd(m.pick(m.fds, target))
        elif action == 'stop_all':
            for w in list(m.watchers):
                w.stop()
        elif action == 'wait_own':
            # wait on its own watcher (not in main, where nothing may bound
            # the wait: a spawned greenlet left waiting is the user's choice)
            hub = H.get_hub_if_exists()
            if (hub is not None and owner is not None and not isinstance(owner, core.loop)
                    and greenlet.getcurrent() is not m.main):
                hub.wait(owner)
    finally:
        ACTION_DEPTH[0] -= 1


def noop(*args):
    HITS['noop'] += 1


def _raiser(*args):
    raise HostileError('from a callback')


class Hostile(object):
    """A callable that does its action when its trigger runs.  ``owner`` is
    the watcher or loop it was handed to (a weak reference when possible:
    the machine keeps no strong reference to a hostile object)."""

    def __init__(self, spec, owner=None):
        self.spec = spec
        self._busy = False
        self.bind(owner)

    def bind(self, owner):
        try:
            self._owner = weakref.ref(owner) if owner is not None else None
        except TypeError:
            self._owner = (lambda o: lambda: o)(owner)

    def _fire(self, name):
        spec = self.spec
        if spec.trigger != name or self._busy:
            return
        self._busy = True
        try:
            do_action(spec.action, self._owner() if self._owner else None, spec.target)
        finally:
            self._busy = False

    def __del__(self):
        self._fire('__del__')

    def __repr__(self):
        self._fire('__repr__')
        return '<Hostile %s>' % (self.spec,)

    def __str__(self):
        self._fire('__str__')
        return 'Hostile'

    def __eq__(self, other):
        self._fire('__eq__')
        return self is other

    def __hash__(self):
        self._fire('__hash__')
        return id(self) >> 4

    def __call__(self, *args, **kwargs):
        HITS['call'] += 1
        self._fire('__call__')

    def __float__(self):
        self._fire('__float__')
        return 0.001

    def __index__(self):
        self._fire('__index__')
        return 1

    def __bool__(self):
        self._fire('__bool__')
        return True

    def __fspath__(self):
        self._fire('__fspath__')
        return '/tmp'

    # a hostile loop error handler
    def handle_error(self, *args):
        self._fire('__call__')

    # a hostile stream (exception_stream)
    def write(self, s):
        self._fire('__call__')
        return len(s)

    def flush(self):
        pass


class HostileStr(str):
    """A str (a host name) with a hostile side."""

    def __new__(cls, value, spec):
        self = str.__new__(cls, value)
        self.h = Hostile(spec)
        return self

    def __hash__(self):
        self.h._fire('__hash__')
        return str.__hash__(self)

    def __eq__(self, other):
        self.h._fire('__eq__')
        return str.__eq__(self, other)


class HostileMeta(type):
    """A metaclass whose isinstance/issubclass checks are hostile: an
    exception class put in a hub's NOT_ERROR or SYSTEM_ERROR."""

    def __subclasscheck__(cls, sub):
        cls.h._fire('__eq__')
        return False

    def __instancecheck__(cls, obj):
        cls.h._fire('__eq__')
        return False


def hostile_class(spec, owner=None):
    cls = HostileMeta('HostileClass', (Exception,), {})
    cls.h = Hostile(spec._replace(trigger='__eq__'), owner)
    return cls


def make(spec, owner=None):
    """A hostile object for ``spec`` (None: a harmless callable)."""
    if spec is None:
        return noop
    return Hostile(spec, owner)


def garbage(spec, owner=None):
    """Leave a reference cycle holding a hostile object: its finalizer runs
    whenever the next collection happens (maybe inside C)."""
    h = Hostile(spec, owner)
    cycle = [h]
    cycle.append(cycle)
    h.cycle = cycle


# ---------------------------------------------------------------------------
# step log, exceptions

LOG_FD = [None]
STEP = [0]

# Exception types that are a sensible outcome of hostile input.  Anything
# else coming out of a rule (SystemError above all: C returned NULL without
# an exception or the reverse) is an invariant violation.
SENSIBLE = (TypeError, ValueError, OSError, RuntimeError, AttributeError, OverflowError,
            LookupError, ArithmeticError, AssertionError, greenlet.error, greenlet.GreenletExit,
            HostileError, HostileError.Broken, H.LoopExit, H.InvalidThreadUseError,
            H.ConcurrentObjectUseError, GuardTimeout, EOFError)
INSANE = (SystemError, NameError, UnboundLocalError, MemoryError)

VIOLATIONS = []


def say(text):
    fd = LOG_FD[0]
    if fd is not None:
        os.write(fd, (text + '\n').encode('utf-8', 'replace'))


def check_exception(where, e):
    if isinstance(e, INSANE) or not isinstance(e, SENSIBLE):
        VIOLATIONS.append('%s: %s: %s' % (where, type(e).__name__, _safe_str(e)))


def _safe_str(e):
    try:
        return str(e)[:300]
    except BaseException:
        return '<unprintable>'


def unraisable_hook(u):
    # exceptions from __del__ and the like: hostile ones are expected;
    # a SystemError there is a C bug all the same
    HITS['unraisable'] += 1
    if u.exc_value is not None:
        check_exception('unraisable (%s)' % _safe_str(u.err_msg), u.exc_value)


class Sink(object):
    def write(self, s):
        HITS['stream'] += 1
        if 'SystemError' in s:
            VIOLATIONS.append('SystemError printed by the hub: %s' % s[:300])
        return len(s)

    def flush(self):
        pass


def step(fn):
    """Rule decorator: log the step, run it, vet the exception it raises."""
    import functools

    @functools.wraps(fn)
    def wrapper(self, **kw):
        STEP[0] += 1
        say('%s(%s)' % (fn.__name__, ', '.join('%s=%r' % kv for kv in sorted(kw.items()))))
        faulthandler.dump_traceback_later(STEP_TIMEOUT[0], exit=True)
        try:
            fn(self, **kw)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            check_exception(fn.__name__, e)
        self.check_counts()
        if VIOLATIONS:
            raise AssertionError('invariant violated:\n' + '\n'.join(VIOLATIONS))
    return wrapper


STEP_TIMEOUT = [60.0]

# ---------------------------------------------------------------------------
# the machine (plain methods; Hypothesis rules are attached in build_machine)

KINDS = ('timer', 'io', 'signal', 'idle', 'prepare', 'check', 'async_', 'fork', 'child', 'stat')
MAX_WATCHERS = 24
MAX_LOOPS = 3


class Driver(object):
    def __init__(self):
        global MACHINE
        MACHINE = self
        self.loops = []
        self.watchers = []
        self.callbacks = []
        self.waiters = []
        self.greenlets = []
        self.pools = []
        self.children = []
        self.socks = list(socket.socketpair())
        self.fds = [s.fileno() for s in self.socks]
        self.resolvers = []
        self.main = greenlet.getcurrent()
        self._hub = None
        self.refresh_hub()

    # -- helpers -------------------------------------------------------

    def refresh_hub(self):
        hub = usable_hub()
        if hub is not self._hub:
            hub.exception_stream = Sink()
            self._hub = hub
        return hub

    @property
    def hub(self):
        return self.refresh_hub()

    def hub_loop(self):
        hub = H.get_hub_if_exists()
        return hub.loop if hub is not None else None

    def pick(self, seq, i):
        return seq[i % len(seq)] if seq else None

    def loop(self, i):
        """The hub's loop (even i) or a private loop."""
        if self.loops and i % 2:
            return self.pick(self.loops, i // 2)
        return self.hub.loop

    def guarded(self, fn, seconds=0.05, ref=True):
        hub = self.hub
        me = greenlet.getcurrent()
        t = hub.loop.timer(seconds, ref=ref)

        def fire():
            if not me.dead:
                me.throw(GuardTimeout)
        t.start(fire)
        try:
            return fn()
        except GuardTimeout:
            HITS['guard'] += 1
        finally:
            t.close()

    def keep(self, lst, x, cap):
        lst.append(x)
        while len(lst) > cap:
            lst.pop(0)

    # -- rules ---------------------------------------------------------

    def new_loop(self):
        self.keep(self.loops, core.loop(default=False), MAX_LOOPS)

    def new_watcher(self, kind, loop, ref, arg):
        lp = self.loop(loop)
        # its 'own' loop is the one the constructor is converting it for
        h = make(arg, lp) if arg is not None else None
        if kind == 'timer':
            w = lp.timer(h if h is not None else 0.001, 0, ref=ref)
        elif kind == 'io':
            fd = h if (h is not None and arg.trigger == '__index__') else self.pick(self.fds, loop)
            w = lp.io(fd, 1 + loop % 2, ref=ref)
        elif kind == 'signal':
            w = lp.signal(h if (h is not None and arg.trigger == '__index__') else signal.SIGUSR1,
                          ref=ref)
        elif kind == 'child':
            w = lp.child(0, h if h is not None else False, ref=ref)
        elif kind == 'stat':
            w = lp.stat(h if (h is not None and arg.trigger == '__fspath__') else '/tmp',
                        h if (h is not None and arg.trigger == '__float__') else 0.0, ref=ref)
        elif h is not None and arg.trigger in ('__bool__', '__index__'):
            # a hostile ref flag or priority
            w = getattr(lp, kind)(**{'ref' if arg.trigger == '__bool__' else 'priority': h})
        else:
            w = getattr(lp, kind)(ref=ref)
        del h
        self.keep(self.watchers, w, MAX_WATCHERS)

    def start(self, w, cb, arg):
        w = self.pick(self.watchers, w)
        if w is None:
            return
        args = (make(arg, w),) if arg is not None else ()
        w.start(make(cb, w), *args)

    def hub_wait(self, w, cb):
        """hub.wait(watcher) replaces the watcher's callback (a hostile one
        set before)."""
        w = self.pick(self.watchers, w)
        if w is None:
            return
        if cb is not None:
            w.callback = make(cb, w)
        hub = self.hub
        self.guarded(lambda: hub.wait(w), 0.01)

    def watcher_op(self, w, op, val):
        w = self.pick(self.watchers, w)
        if w is None:
            return
        h = make(val, w) if val is not None else None
        if op == 'stop':
            w.stop()
        elif op == 'close':
            w.close()
        elif op == 'ref':
            w.ref = h if h is not None else False
        elif op == 'priority':
            w.priority = h if h is not None else 1
        elif op == 'callback':
            w.callback = h
        elif op == 'args':
            w.args = (h,) if h is not None else None
        elif op == 'repr':
            repr(w)
        elif op == 'again':
            if hasattr(w, 'again'):
                w.again(h or noop)
            elif hasattr(w, 'send'):
                w.send()
            elif hasattr(w, 'feed'):
                w.feed(1, h or noop)
        elif op == 'with':
            with w:
                pass
        elif op == 'drop':
            self.watchers.remove(w)
        elif op == 'fd':
            # io: a hostile fd number; others: AttributeError
            w.fd = h if h is not None else self.pick(self.fds, 1)
        elif op == 'closing_fd':
            w.loop.closing_fd(h if h is not None else self.pick(self.fds, 0))
        elif op == 'error_handler':
            if w.loop is not self.hub.loop:
                w.loop.error_handler = h

    def run_callback(self, loop, cb, arg, threadsafe, keep):
        lp = self.loop(loop)
        args = (make(arg, lp),) if arg is not None else ()
        fn = lp.run_callback_threadsafe if threadsafe else lp.run_callback
        handle = fn(make(cb, lp), *args)
        if keep:
            # else only the loop holds the callback (and so its finalizer)
            self.keep(self.callbacks, handle, 8)

    def callback_op(self, i, op):
        cb = self.pick(self.callbacks, i)
        if cb is None:
            return
        if op == 'stop':
            cb.stop()
        elif op == 'close':
            cb.close()
        elif op == 'repr':
            repr(cb)
        else:
            self.callbacks.remove(cb)

    def destroy_loop(self, loop):
        lp = self.loop(loop)
        if lp is self.hub.loop:
            if loop % 4 == 0:
                self.hub.destroy(True)
            return
        lp.destroy()

    def run_loop(self, loop, once):
        lp = self.pick(self.loops, loop)
        if lp is None:
            return
        if once:
            t = lp.timer(0.002)
            t.start(lp.break_)
            try:
                lp.run(once=True)
            finally:
                t.close()
        else:
            lp.run(nowait=True)

    def fire(self, what, t):
        """Make watchers fire (their hostile callbacks then run in the
        hub), then let the hub run."""
        if what == 'io':
            self.socks[1].send(b'x')
        elif what == 'signal':
            os.kill(os.getpid(), signal.SIGUSR1)
        elif what == 'child':
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            self.children.append(pid)
        elif what == 'stat':
            os.utime('/tmp')
        elif what == 'async':
            for w in self.watchers:
                if hasattr(w, 'send'):
                    w.send()
        self.guarded(lambda: H.sleep(t), 0.05)
        if what == 'io':
            try:
                self.socks[0].recv(4096, socket.MSG_DONTWAIT)
            except OSError:
                pass

    def sleep(self, t):
        self.guarded(lambda: H.sleep(t), 0.05)

    def wait_nothing(self, how):
        """Block main with an unref'd guard: with nothing else to run the
        hub raises LoopExit (listing the loop's active handles)."""
        hub = self.hub
        if how == 'waiter':
            self.guarded(H.Waiter().get, 0.02, ref=False)
        elif how == 'join':
            self.guarded(lambda: hub.join(), 0.02, ref=False)
        else:
            self.guarded(hub.switch, 0.02, ref=False)

    def loop_debug(self, loop, gc_spec, threshold):
        """loop.debug(); with gc_spec, a garbage cycle with that finalizer
        and a GC threshold low enough for a collection inside the walk."""
        lp = self.loop(loop)
        if gc_spec is None:
            lp.debug()
            return
        gc.collect()
        garbage(gc_spec, lp)
        old = gc.get_threshold()
        gc.set_threshold(threshold)
        try:
            lp.debug()
        finally:
            gc.set_threshold(*old)

    def gc_op(self, op, spec, threshold):
        if op == 'collect':
            gc.collect()
        elif op == 'garbage':
            garbage(spec, self.pick(self.watchers, threshold) or self.hub.loop)
        elif op == 'threshold':
            gc.set_threshold(threshold)
        else:
            gc.set_threshold(700, 10, 10)

    def waiter_op(self, i, op, val):
        if op == 'new' or not self.waiters:
            self.keep(self.waiters, H.Waiter(), 6)
            return
        w = self.pick(self.waiters, i)
        h = make(val) if val is not None else None
        if op == 'switch':
            w.switch(h)
        elif op == 'throw':
            w.throw(HostileError if val is None else HostileError(h))
        elif op == 'get':
            self.guarded(w.get, 0.005)
        elif op == 'repr':
            repr(w), str(w)
        elif op == 'blocked':
            g = H.spawn_raw(w.get)
            self.keep(self.greenlets, g, 8)
            self.guarded(lambda: H.sleep(0))
            w.switch(h)
            self.guarded(lambda: H.sleep(0))
        else:
            w.clear()

    def spawn(self, cb, arg, kill):
        g = H.spawn_raw(make(cb), *((make(arg),) if arg is not None else ()))
        self.keep(self.greenlets, g, 8)
        if kill:
            H.kill(g, HostileError(make(arg)) if arg is not None else HostileError)
        self.guarded(lambda: H.sleep(0))

    def new_hub(self, private):
        """Replace main's hub: on a private loop (a heap-allocated native
        loop, which destroy() really frees) or on the default one."""
        old = H.get_hub_if_exists()
        if old is not None:
            old.destroy(True)
        hub = H.Hub(core.loop(default=False)) if private else H.Hub()
        H.set_hub(hub)
        self.refresh_hub()

    def hub_op(self, op, val):
        hub = self.hub
        h = make(val) if val is not None else None
        if op == 'handle_error':
            hub.handle_error(h, HostileError, HostileError(h), None)
        elif op == 'print_exception':
            hub.print_exception(h, HostileError, HostileError(h), None)
        elif op == 'stream':
            hub.exception_stream = h if h is not None else Sink()
            try:
                hub.handle_error(None, HostileError, HostileError('s'), None)
            finally:
                hub.exception_stream = Sink()
        elif op == 'repr':
            repr(hub)
        elif op == 'join':
            self.guarded(lambda: hub.join(0.001), 0.05)
        elif op == 'destroy':
            hub.destroy(h)
        elif op == 'reinit':
            H.reinit()
        elif op == 'signal':
            s = H.signal(signal.SIGUSR2, make(val))
            os.kill(os.getpid(), signal.SIGUSR2)
            self.guarded(lambda: H.sleep(0.001))
            s.cancel()
        elif op == 'idle':
            self.guarded(lambda: H.idle(), 0.05)
        elif op in ('override', 'not_error', 'system_error'):
            # hostile hub policy: an instance override of handle_error,
            # print_exception or format_context, or a hostile class in
            # NOT_ERROR / SYSTEM_ERROR; then a callback raises in the hub
            if op == 'override':
                name = ('handle_error', 'print_exception', 'format_context')[
                    (val.target if val else 0) % 3]
                setattr(hub, name, h if h is not None else noop)
            elif val is not None:
                cls = hostile_class(val, hub.loop)
                if op == 'not_error':
                    hub.NOT_ERROR = (cls,)
                else:
                    hub.SYSTEM_ERROR = (cls,)
            try:
                hub.loop.run_callback(_raiser)
                self.guarded(lambda: H.sleep(0.001))
            finally:
                for name in ('handle_error', 'print_exception', 'format_context', 'NOT_ERROR',
                             'SYSTEM_ERROR'):
                    hub.__dict__.pop(name, None)
        else:
            hub.cancel_wait(self.pick(self.watchers, 0) or h, HostileError(h))
            self.guarded(lambda: H.sleep(0))

    def pool_op(self, i, op, val):
        if op == 'new' or not self.pools:
            self.keep(self.pools, ThreadPool(1 + i % 2), 2)
            return
        pool = self.pick(self.pools + [self.hub.threadpool], i)
        h = make(val) if val is not None else None
        if op == 'spawn':
            # the hostile task runs in a worker thread
            self.guarded(lambda: pool.spawn(h or noop).get(), 0.2)
        elif op == 'apply':
            self.guarded(lambda: pool.apply(noop, (h,)), 0.2)
        elif op == 'result':
            # a hostile object made in the worker comes back to the hub
            self.guarded(lambda: pool.apply(Hostile, (val,)) if val else None, 0.2)
        elif op == 'async':
            pool.apply_async(noop, (1,), None, h or noop)
            self.guarded(lambda: H.sleep(0.002))
        elif op == 'map':
            self.guarded(lambda: list(pool.map(noop, [h, h])), 0.2)
        elif op == 'kill':
            pool.kill()
        else:
            self.guarded(pool.join, 0.05)

    def resolve(self, which, op, val):
        if which == 'ares' and resolver_ares is not None:
            if not self.resolvers or self.resolvers[-1].hub is not self.hub:
                self.keep(self.resolvers, resolver_ares.Resolver(hub=self.hub, timeout=0.2,
                                                                 tries=1), 2)
            r = self.resolvers[-1]
        else:
            r = self.hub.resolver
        name = HostileStr('127.0.0.1', val) if val is not None else '127.0.0.1'
        h = make(val) if val is not None else 0
        if op == 'gethostbyname':
            self.guarded(lambda: r.gethostbyname(name), 1.0)
        elif op == 'getaddrinfo':
            self.guarded(lambda: r.getaddrinfo(name, h), 1.0)
        elif op == 'gethostbyaddr':
            self.guarded(lambda: r.gethostbyaddr(name), 1.0)
        elif op == 'getnameinfo':
            self.guarded(lambda: r.getnameinfo((name, h), 0), 1.0)
        else:
            r.close()
            if r in self.resolvers:
                self.resolvers.remove(r)

    def thread_act(self, op, w, spec):
        """One call from a second thread while main runs the hub (the loop
        polls without the GIL)."""
        target = self.pick(self.watchers, w)
        lp = self.loop(w)
        h = make(spec, target)
        errors = []

        def body(h=h):
            try:
                if op == 'run_callback_threadsafe':
                    lp.run_callback_threadsafe(h)
                elif op == 'close':
                    if target is not None:
                        target.close()
                elif op == 'start':
                    if target is not None:
                        target.start(h)
                elif op == 'destroy':
                    lp.destroy()
                elif op == 'gc':
                    h = None
                    gc.collect()
                elif op == 'send':
                    if target is not None and hasattr(target, 'send'):
                        target.send()
                elif op == 'sleep':
                    H.sleep(0)
                elif op == 'hub_destroy':
                    self._hub.destroy()
                elif op == 'pool':
                    p = self.pick(self.pools, w)
                    if p is not None:
                        p.spawn(h)
                elif op == 'thread_hub':
                    # the thread's own hub, left with hostile callbacks for
                    # the thread's exit to destroy (finalizers then run
                    # while the thread state is cleared)
                    thub = H.get_hub()
                    tw = getattr(thub.loop, ('timer', 'idle', 'check', 'async_')[w % 4])(
                        *((10,) if w % 4 == 0 else ()))
                    tw.start(make(spec, tw), make(spec, thub.loop))
                    thub.loop.run_callback(make(spec, thub.loop), make(spec, thub.loop))
                    if w % 3:
                        H.sleep(0)
                    garbage(spec, thub.loop) if spec is not None else None
            except BaseException as e:
                errors.append(e)
            h = None
        del h
        t = threading.Thread(target=body)
        t.start()
        self.guarded(lambda: H.sleep(0.002), 0.05)
        deadline = time.time() + 10
        while t.is_alive() and time.time() < deadline:
            self.guarded(lambda: H.sleep(0.001), 0.05)
        t.join(1)
        if t.is_alive():
            raise AssertionError('hang: a call from a second thread did not return')
        for e in errors:
            check_exception('thread_act', e)

    def fork(self, spec):
        """fork(); the child acts, then checks its hub works; the parent
        reaps it and fails on a signal death, a hang or a broken hub."""
        pools = list(self.pools)
        if self.hub._threadpool is not None:
            pools.append(self.hub._threadpool)
        # a pool worker starting at fork() can leave ASan's allocator lock
        # held in the child (docs/reliability.md): fork only when none is
        for _ in range(200):
            if not any(p._starting for p in pools):
                break
            time.sleep(0.005)
        else:
            return
        pid = os.fork()
        if pid == 0:
            rc = 0
            try:
                signal.alarm(20)
                try:
                    if spec is not None:
                        # finalizers due at the child's first allocations
                        garbage(spec, self.pick(self.watchers, 0) or self.hub_loop())
                        gc.set_threshold(1 + spec.target % 4)
                    H.reinit()
                    h = make(spec, self.pick(self.watchers, 0))
                    del h
                    H.sleep(0)
                    gc.set_threshold(700, 10, 10)
                except BaseException as e:
                    if isinstance(e, INSANE) or not isinstance(e, SENSIBLE):
                        rc = 4
                if not final_check():
                    rc = 5
            except BaseException:
                rc = 6
            os._exit(rc)
        status = _util.wait_child(pid, 30, poll=0.002)
        if status is None:
            VIOLATIONS.append('forked child hung')
            return
        if os.WIFSIGNALED(status):
            VIOLATIONS.append('forked child died of signal %d' % os.WTERMSIG(status))
        elif os.WEXITSTATUS(status):
            VIOLATIONS.append('forked child exited %d (4: insane exception, 5: hub broken)'
                              % os.WEXITSTATUS(status))

    def check_counts(self):
        """A loop's activecnt counts at least the active referenced
        watchers it has (the hub's loop would otherwise end its run, and
        raise LoopExit, with watchers still due)."""
        hub = H.get_hub_if_exists()
        loops = list(self.loops)
        if hub is not None and hub.loop is not None:
            loops.append(hub.loop)
        for lp in loops:
            try:
                if not lp.ptr:
                    continue
                n = sum(1 for w in self.watchers if w.loop is lp and w.active and w.ref)
                cnt = lp.activecnt
            except BaseException as e:
                check_exception('check_counts', e)
                continue
            if cnt < n:
                VIOLATIONS.append('%r: activecnt %d < %d active referenced watchers'
                                  % (lp, cnt, n))

    # -- per example -----------------------------------------------------

    def teardown(self):
        global MACHINE
        gc.set_threshold(700, 10, 10)
        close_all(self.watchers, 'close')
        close_all(self.pools, 'kill')
        close_all(self.resolvers, 'close')
        close_all(self.loops, 'destroy')
        for g in self.greenlets:
            # end them here, returning to main: one whose hub was destroyed
            # would otherwise hand its GreenletExit to main (its parent's
            # parent) in the middle of the final check
            try:
                if not g.dead:
                    g.parent = greenlet.getcurrent()
                    g.throw(greenlet.GreenletExit)
            except BaseException:
                pass
        MACHINE = None
        del self.watchers[:], self.loops[:], self.callbacks[:], self.greenlets[:]
        del self.waiters[:], self.pools[:], self.resolvers[:]
        for s in self.socks:
            s.close()
        for pid in self.children:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        gc.collect()
        ok = final_check()
        say('-- end of example (hub %s)' % ('ok' if ok else 'BROKEN'))
        if not ok:
            raise AssertionError('the main hub no longer works after this example')
        if VIOLATIONS:
            raise AssertionError('invariant violated:\n' + '\n'.join(VIOLATIONS))


def _broken(hub):
    return hub is None or hub.dead or hub.loop is None or not hub.loop.ptr


def usable_hub():
    """This thread's hub, or a fresh one if a step destroyed it or its
    loop.  A loop kept for the next hub (``destroy(destroy_loop=False)``)
    that a step destroyed afterwards is dropped first: the next hub would
    take it (gevent does the same) and fail every operation."""
    hub = H.get_hub_if_exists()
    if not _broken(hub):
        return hub
    if hub is not None:
        try:
            hub.destroy(True)
        except BaseException:
            pass
    H.set_hub(None)
    saved = H._get_saved_loop()
    if saved is not None and not saved.ptr:
        H._set_saved_loop(None)
    return H.get_hub()


def _round_trip(hub):
    H.sleep(0)
    w = H.Waiter()
    t = hub.loop.timer(0.001)
    guard = hub.loop.timer(10)
    guard.start(w.switch, 'timeout')
    t.start(w.switch, 'ok')
    try:
        res = w.get()
    finally:
        t.close()
        guard.close()
    H.sleep(0)
    return res


def final_check():
    """The current hub (a fresh one if it was destroyed or lost its loop)
    runs sleep(0) and a timer round trip."""
    try:
        hub = usable_hub()
        hub.exception_stream = Sink()
        for attempt in (1, 2):
            try:
                res = _round_trip(hub)
                break
            except H.LoopExit:
                # a step's loop.break_() of the hub's loop, while the hub
                # was suspended in its run, ends that run when it resumes:
                # LoopExit once (as in gevent); the next wait must work
                if attempt == 2:
                    raise
        if res != 'ok':
            say('final check: the timer round trip gave %r' % (res,))
        return res == 'ok'
    except BaseException as e:
        say('final check failed: %s: %s' % (type(e).__name__, _safe_str(e)))
        return False


# ---------------------------------------------------------------------------
# Hypothesis


RULES = {}   # rule name -> dict of argument strategies (filled in build_machine)


def build_machine():
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule

    idx = st.integers(0, 15)
    # weighted towards what C is most exposed to: finalizers and repr, and
    # actions that take away what C is using
    triggers = st.sampled_from(TRIGGERS + ('__del__',) * 4 + ('__repr__',) * 2 + ('__call__',))
    actions = st.sampled_from(ACTIONS + ('close_own', 'destroy_own_loop', 'destroy_hub_loop',
                                         'destroy_any_loop', 'debug') * 2)
    specs = st.builds(Spec, triggers, actions, idx)
    maybe = st.one_of(st.none(), specs, specs, specs)
    RULES.update({
        'new_loop': {},
        'new_watcher': dict(kind=st.sampled_from(KINDS), loop=idx,
                            ref=st.sampled_from([False, False, True]), arg=maybe),
        'start': dict(w=idx, cb=maybe, arg=maybe),
        'hub_wait': dict(w=idx, cb=maybe),
        'watcher_op': dict(w=idx, op=st.sampled_from(
            ['stop', 'close', 'ref', 'priority', 'callback', 'args', 'repr', 'again', 'with',
             'drop', 'fd', 'closing_fd', 'error_handler']), val=maybe),
        'run_callback': dict(loop=idx, cb=maybe, arg=maybe, threadsafe=st.booleans(),
                             keep=st.booleans()),
        'callback_op': dict(i=idx, op=st.sampled_from(['stop', 'close', 'repr', 'drop'])),
        'destroy_loop': dict(loop=idx),
        'run_loop': dict(loop=idx, once=st.booleans()),
        'sleep': dict(t=st.sampled_from([0, 0, 0.001])),
        'fire': dict(what=st.sampled_from(['io', 'signal', 'child', 'stat', 'async']),
                     t=st.sampled_from([0, 0.001, 0.003])),
        'wait_nothing': dict(how=st.sampled_from(['waiter', 'join', 'switch'])),
        'loop_debug': dict(loop=idx, gc_spec=maybe, threshold=st.integers(1, 8)),
        'gc_op': dict(op=st.sampled_from(['collect', 'garbage', 'garbage', 'threshold',
                                          'reset']),
                      spec=specs, threshold=st.integers(1, 20)),
        'waiter_op': dict(i=idx, op=st.sampled_from(['new', 'switch', 'throw', 'get', 'repr',
                                                     'blocked', 'clear']), val=maybe),
        'spawn': dict(cb=maybe, arg=maybe, kill=st.booleans()),
        'new_hub': dict(private=st.booleans()),
        'hub_op': dict(op=st.sampled_from(['handle_error', 'print_exception', 'stream', 'repr',
                                           'join', 'destroy', 'reinit', 'signal', 'idle',
                                           'cancel_wait', 'override', 'not_error',
                                           'system_error']), val=maybe),
        'pool_op': dict(i=idx, op=st.sampled_from(['new', 'spawn', 'apply', 'result', 'async',
                                                   'map', 'kill', 'join']), val=maybe),
        'resolve': dict(which=st.sampled_from(['thread', 'ares']),
                        op=st.sampled_from(['gethostbyname', 'getaddrinfo', 'gethostbyaddr',
                                            'getnameinfo', 'close']), val=maybe),
        'thread_act': dict(op=st.sampled_from(['run_callback_threadsafe', 'close', 'start',
                                               'destroy', 'gc', 'send', 'sleep', 'hub_destroy',
                                               'pool', 'thread_hub', 'thread_hub']),
                           w=idx, spec=maybe),
        'fork': dict(spec=maybe),
    })

    ns = {}

    def init(self):
        RuleBasedStateMachine.__init__(self)
        Driver.__init__(self)
    ns['__init__'] = init
    for name, strategies in RULES.items():
        ns[name] = rule(**strategies)(step(getattr(Driver, name)))
    return type('HostileMachine', (Driver, RuleBasedStateMachine), ns)


def run_hypothesis(seed, examples, steps, shrink):
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import seed as hseed
    from hypothesis.stateful import run_state_machine_as_test
    machine = hseed(seed)(build_machine())
    phases = [Phase.generate] + ([Phase.shrink] if shrink else [])
    counter = [0]

    class Factory(object):
        def __call__(self):
            counter[0] += 1
            say('== example %d' % counter[0])
            return machine()
    factory = Factory()
    # run_state_machine_as_test reads the seed from the factory
    factory._hypothesis_internal_use_seed = seed
    run_state_machine_as_test(factory, settings=settings(
        max_examples=examples, stateful_step_count=steps, database=None, deadline=None,
        phases=phases, suppress_health_check=list(HealthCheck), print_blob=False,
        report_multiple_bugs=False))
    return counter[0]


# ---------------------------------------------------------------------------
# replay / minimize


def read_last_example(path):
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    start = 0
    for i, line in enumerate(lines):
        if line.startswith('== example'):
            start = i + 1
    return [ln for ln in lines[start:] if ln and not ln.startswith(('--', '==', 'final'))]


def replay(steps):
    """Run logged steps (``rule(kw=...)``) on a fresh Driver, no Hypothesis."""
    d = Driver()
    env = {'Spec': Spec}
    for line in steps:
        name, _, rest = line.partition('(')
        kw = eval('dict(' + rest, env)
        say(line)
        faulthandler.dump_traceback_later(STEP_TIMEOUT[0], exit=True)
        try:
            getattr(Driver, name)(d, **kw)
        except BaseException as e:
            check_exception(name, e)
    d.teardown()


def _replay_outcome(steps, timeout):
    """Exit status of a fresh interpreter replaying steps ('timeout' on a hang)."""
    import tempfile
    fd, path = tempfile.mkstemp(prefix='gevent_c_hostile_min_', suffix='.log')
    with os.fdopen(fd, 'w') as f:
        f.write('== example 1\n' + '\n'.join(steps) + '\n')
    try:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), '--replay', path,
                            '--step-timeout', str(STEP_TIMEOUT[0])],
                           capture_output=True, text=True, timeout=timeout, env=child_env())
        return p.returncode
    except subprocess.TimeoutExpired:
        return 'timeout'
    finally:
        os.unlink(path)


def minimize(steps, timeout=None, tries=3):
    """Drop steps (halves, then one at a time) while the replay still dies
    with the same status (ddmin, one subprocess per try)."""
    if timeout is None:
        timeout = 2 * STEP_TIMEOUT[0] + 30

    def fails(cand, want):
        return any(_replay_outcome(cand, timeout) == want for _ in range(tries))
    want = None
    for _ in range(tries):
        want = _replay_outcome(steps, timeout)
        if want != 0:
            break
    if want == 0:
        return None, steps
    n = 2
    while len(steps) >= 2:
        chunk = max(1, len(steps) // n)
        reduced = False
        for i in range(0, len(steps), chunk):
            cand = steps[:i] + steps[i + chunk:]
            if cand and fails(cand, want):
                steps = cand
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(steps), n * 2)
    return want, steps


def script_for(steps):
    return '\n'.join([
        '# run from tests/ (python this.py)',
        'import fuzz_hostile as F',
        'F.replay([',
    ] + ['    %r,' % s for s in steps] + ['])', ''])


# ---------------------------------------------------------------------------
# many seeds, each in its own process


def child_env(env=None):
    """The environment of a fuzzing child: glibc fills freed memory with
    0xa5 (MALLOC_PERTURB_), so a use after free of a native loop or handle
    (a walk over a loop destroyed under it) fails at once instead of reading
    stale but plausible memory.  Under ASan its own allocator checks that."""
    env = dict(os.environ if env is None else env)
    env.setdefault('MALLOC_PERTURB_', '165')
    return env


def run_seed(seed, examples, steps, timeout, step_timeout=60.0, env=None, log=None):
    """Run one seed in a fresh interpreter.  Returns (ok, outcome, report):
    outcome is 'ok', 'signal N', 'hang', 'exit N'; report says how to
    replay it and holds the crashing example's steps and the stack dump."""
    import tempfile
    env = child_env(env)
    if log is None:
        fd, log = tempfile.mkstemp(prefix='gevent_c_hostile_%d_' % seed, suffix='.log')
        os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), '--seed', str(seed), '--examples',
           str(examples), '--steps', str(steps), '--log', log, '--step-timeout',
           str(step_timeout)]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
                           capture_output=True, text=True, timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = 'timeout', e.stdout or '', e.stderr or ''
        if isinstance(out, bytes):
            out, err = out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')
    took = time.time() - t0
    if rc == 0 and 'FUZZ HOSTILE OK' in out:
        os.unlink(log)
        return True, 'ok', 'seed %d: ok in %.1f s; %s' % (seed, took, out.strip().splitlines()[0])
    if rc == 'timeout' or 'Timeout (' in err:
        outcome = 'hang'
    elif isinstance(rc, int) and rc < 0:
        outcome = 'signal %d (%s)' % (-rc, signal.Signals(-rc).name)
    else:
        outcome = 'exit %s' % (rc,)
    try:
        steps_run = read_last_example(log)
    except OSError:
        steps_run = []
    crash = err
    i = err.find('Fatal Python error')
    if i < 0:
        i = err.find('Timeout (')
    if i >= 0:
        crash = err[i:]
    else:
        j = err.find('Falsifying example')
        crash = err[j:] if j >= 0 else err[-3000:]
    report = '\n'.join([
        'seed %d: %s after %.1f s (examples<=%d, steps<=%d)' % (seed, outcome, took, examples,
                                                               steps),
        'replay: cd tests && python fuzz_hostile.py --seed %d --examples %d --steps %d'
        % (seed, examples, steps),
        'the last example only: python fuzz_hostile.py --replay %s  (shrink it: --minimize)'
        % log,
        '--- steps of the last example (%d) ---' % len(steps_run)] + steps_run[-40:] + [
        '--- stderr ---', crash[:6000]])
    return False, outcome, report


# ---------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--seeds', help="'1-20,31': each seed in its own process, a summary")
    ap.add_argument('--timeout', type=float, default=600, help='per seed, with --seeds')
    ap.add_argument('--examples', type=int, default=20)
    ap.add_argument('--steps', type=int, default=40)
    ap.add_argument('--log', help='step log (default: stderr)')
    ap.add_argument('--step-timeout', type=float, default=60.0)
    ap.add_argument('--shrink', action='store_true', help='let Hypothesis shrink Python failures')
    ap.add_argument('--replay', metavar='LOG', help='replay the last example of a log')
    ap.add_argument('--minimize', metavar='LOG', help='minimize the last example of a log')
    a = ap.parse_args(argv)
    STEP_TIMEOUT[0] = a.step_timeout
    if a.seeds:
        failed = []
        for sd in parse_seeds(a.seeds):
            ok, outcome, report = run_seed(sd, a.examples, a.steps, a.timeout, a.step_timeout)
            print(report if not ok else report.splitlines()[0], flush=True)
            if not ok:
                failed.append('%d (%s)' % (sd, outcome))
        print('FUZZ HOSTILE: %d seeds, %d failed%s' % (
            len(parse_seeds(a.seeds)), len(failed), (': ' + ', '.join(failed)) if failed else ''))
        return 1 if failed else 0
    if a.minimize:
        want, steps = minimize(read_last_example(a.minimize))
        if want is None:
            print('the example does not crash when replayed')
            return 1
        print('# minimal replay (exit status %s):' % want)
        print(script_for(steps))
        return 0
    faulthandler.enable()
    LOG_FD[0] = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if a.log else 2
    sys.unraisablehook = unraisable_hook
    # SIGUSR1/2 must never kill the process when no watcher has them
    signal.signal(signal.SIGUSR1, lambda *x: None)
    signal.signal(signal.SIGUSR2, lambda *x: None)
    t0 = time.time()
    if a.replay:
        replay(read_last_example(a.replay))
        n = 1
    else:
        n = run_hypothesis(a.seed, a.examples, a.steps, a.shrink)
    faulthandler.cancel_dump_traceback_later()
    if not final_check():
        print('the hub does not work at the end', file=sys.stderr)
        return 1
    print('hostile actions run: %s' % dict(sorted(HITS.items())))
    print('FUZZ HOSTILE OK seed=%d examples=%d steps<=%d in %.1f s'
          % (a.seed, n, a.steps, time.time() - t0))
    return 0


if __name__ == '__main__':
    sys.exit(main())
