#!/usr/bin/env python3
"""Seeded random API fuzzer for gevent_c (docs/reliability.md).

Drives random sequences of loop, watcher, Waiter, hub, callback and thread
pool calls with random, often invalid arguments: wrong types, negative, huge
and NaN numbers, closed and reused fds, calls after close/destroy, calls from
the hub (a callback), from another greenlet and from another thread (while
the loop polls without the GIL), objects dropped to the GC, set_hub() with
junk.  Every call may raise any Python exception; what must never happen is
a crash, an abort, a sanitizer report or a hang.

usage:
    python tests/reliability/fuzz_api.py --seed 1 --ops 10000 [--log FILE]
    python tests/reliability/fuzz_api.py --seeds 1-50 --ops 20000   # long local run

Each operation is written (and flushed) to --log before it runs, so when the
process dies the last lines name the operation that killed it.  A watchdog
(faulthandler) dumps every thread's stack and exits with status 3 if one
operation takes longer than --op-timeout seconds (a hang).  On success the
last stdout line is ``FUZZ OK seed=S ops=N`` followed by a count of the
exceptions seen per type.

Thread timing makes a run only mostly reproducible: the same seed gives the
same sequence of operations and arguments, but not necessarily the same
interleaving with the worker threads.
"""
import argparse
import collections
import faulthandler
import gc
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import greenlet

import gevent_c.core as core
import gevent_c.hub as H
from gevent_c.threadpool import ThreadPool
from gevent_c.timeout import Timeout


class FuzzTimeout(BaseException):
    """Thrown into main by the guard timer that bounds every blocking call."""


def close_all(objs, method):
    """Call obj.method() on each of objs, ignoring what it raises: the end of
    a run, where any of them may already be closed, killed or broken.
    (tests/fuzz_hostile.py shares this and parse_seeds.)"""
    for obj in objs:
        try:
            getattr(obj, method)()
        except BaseException:
            pass


def parse_seeds(text):
    """'1-4,9' -> [1, 2, 3, 4, 9]"""
    out = []
    for part in text.split(','):
        a, _, b = part.partition('-')
        out.extend(range(int(a), int(b or a) + 1))
    return out


class Sink(object):
    """exception_stream / stderr replacement: counts, keeps nothing."""
    n = 0

    def write(self, s):
        Sink.n += 1
        return len(s)

    def flush(self):
        pass


# FUZZ_EXCLUDE=stat,child: watcher kinds not to create (to look past a known
# bug while it is being fixed; the CI run excludes nothing).
EXCLUDE = set(filter(None, os.environ.get('FUZZ_EXCLUDE', '').split(',')))
MAX_WATCHERS = 80
MAX_FDS = 60
MAX_LOOPS = 4


class Fuzzer(object):
    def __init__(self, seed, log):
        self.rng = random.Random(seed)
        self.seed = seed
        self.log = log
        self.main = greenlet.getcurrent()
        self.loops = []        # private loops (some destroyed)
        self.watchers = []
        self.waiters = []
        self.greenlets = []
        self.callbacks = []
        self.fds = []          # open fds this driver owns
        self.stale_fds = []    # numbers it closed (maybe reused since)
        # socket objects (io() takes objects with fileno()); never closed
        self.socks = list(socket.socketpair())
        self.pools = []
        self.hubs = []         # extra Hub objects made with junk args
        self.errors = collections.Counter()
        self.opcount = 0
        self.in_thread_errors = collections.Counter()
        self.hits = 0
        self.sink = Sink()
        self._hub = None
        self.refresh_hub()
        for _ in range(4):
            self.op_new_fds()
        self.ops = self._ops_table()

    # -- helpers ---------------------------------------------------------

    def refresh_hub(self):
        """The driver's own hub: recreate after a fuzzed destroy()/kill."""
        hub = H._get_hub()
        if not isinstance(hub, H.Hub) or hub.dead or hub.loop is None:
            try:
                if isinstance(hub, H.Hub) and hub.loop is not None:
                    hub.destroy()
            except BaseException:
                pass
            H.set_hub(None)
            hub = H.get_hub()
        if hub is not self._hub:
            hub.exception_stream = self.sink
            self._hub = hub
        return hub

    @property
    def hub(self):
        return self.refresh_hub()

    def say(self, text):
        os.write(self.log, ('%d %s\n' % (self.opcount, text)).encode('utf-8', 'replace'))

    def guarded(self, fn, seconds=0.05):
        """Run a possibly blocking fn in main, bounded by a guard timer that
        throws FuzzTimeout into main.  Only the hub runs the guard, so it is
        started on the driver's hub's loop with ref=True."""
        hub = self.hub
        me = greenlet.getcurrent()
        t = hub.loop.timer(seconds)

        def fire():
            if not me.dead:
                me.throw(FuzzTimeout)
        t.start(fire)
        try:
            return fn()
        except FuzzTimeout:
            self.errors['(guard timeout)'] += 1
        finally:
            t.close()

    def pick(self, seq):
        return self.rng.choice(seq) if seq else None

    def num(self):
        r = self.rng
        return r.choice([
            0, 1, -1, 2, 0.0, -0.0, 0.001, 1e-9, -0.5, 0.5, 5, 10 ** 9,
            2 ** 31, 2 ** 31 - 1, -2 ** 31, 2 ** 32, 2 ** 63 - 1, 2 ** 63, -2 ** 63, 2 ** 64,
            10 ** 100, -10 ** 100, float('nan'), float('inf'), float('-inf'),
            1.7976931348623157e308, sys.maxsize, -sys.maxsize - 1, True, False,
            r.randint(-5, 100), r.random() * 0.01])

    def small_time(self):
        """A short duration: bounded sleeps must not dominate the run."""
        return self.rng.choice([0, 0, 0.0005, 0.001, 0.002, -1, -0.0, 1e-9])

    def junk(self, depth=0):
        r = self.rng
        k = r.randrange(14)
        if k == 0:
            return None
        if k <= 3:
            return self.num()
        if k == 4:
            return r.choice(['', 'x', '/tmp', '\x00', 'a' * 5000, b'', b'x', bytearray(b'y')])
        if k == 5:
            return r.choice([(), [], {}, set(), (1, 2), [None], {'a': 1}])
        if k == 6:
            return object()
        if k == 7:
            return self.pick(self.watchers)
        if k == 8:
            return self.pick(self.loops) or self.hub.loop
        if k == 9:
            return self.pick(self.waiters)
        if k == 10:
            return self.pick(self.fds)
        if k == 11:
            return r.choice([ValueError, ValueError('v'), KeyError, GreenletExit_,
                             Exception, BaseException, int, type, self.hub, self.main])
        if k == 12:
            return self.callback()
        return self.pick(self.greenlets)

    def fd(self):
        r = self.rng
        k = r.randrange(10)
        if k < 6 and self.fds:
            return r.choice(self.fds)
        if k < 8 and self.stale_fds:
            return r.choice(self.stale_fds)
        return r.choice([-1, -2, 0, 1, 2, 999999, 2 ** 31, 2 ** 40, -2 ** 63, 1.5, 'x', None,
                         self.pick(self.socks)])

    def any_loop(self):
        r = self.rng
        if self.loops and r.random() < 0.35:
            return r.choice(self.loops)
        return self.hub.loop

    # callbacks handed to watchers / run_callback: harmless, raising,
    # re-entrant (run another fuzz op inside the hub), or junk
    def callback(self):
        r = self.rng
        k = r.randrange(12)
        fz = self

        def noop(*a):
            fz.hits += 1

        def raiser(*a):
            raise r.choice([ValueError('cb'), ZeroDivisionError, KeyError('k'), GreenletExit_])

        def nested(*a):
            # one random non-blocking op run inside the hub
            fz.run_one(nested=True)

        def stopper(*a):
            w = fz.pick(fz.watchers)
            if w is not None:
                w.stop()

        def closer(*a):
            w = fz.pick(fz.watchers)
            if w is not None:
                w.close()

        def blocker(*a):
            H.sleep(0.001)  # BlockingSwitchOutError in the hub

        def destroyer(*a):
            lp = fz.pick(fz.loops)
            if lp is not None:
                lp.destroy()

        def fdcloser(*a):
            fz.op_close_fd()

        if k == 0:
            return noop
        if k == 1:
            return raiser
        if k == 2:
            return nested
        if k == 3:
            return stopper
        if k == 4:
            return closer
        if k == 5:
            return blocker
        if k == 6:
            return destroyer
        if k == 7:
            return fdcloser
        if k == 8:
            w = self.pick(self.waiters)
            return w.switch if w is not None else noop
        if k == 9:
            return r.choice([None, 5, 'x', object()])
        if k == 10:
            return r.choice([print, len, int, H.Waiter, gc.collect])
        return noop

    def args(self):
        return tuple(self.junk() for _ in range(self.rng.randrange(4)))

    def trim(self, lst, cap, close=None):
        while len(lst) > cap:
            x = lst.pop(self.rng.randrange(len(lst)))
            if close is not None:
                try:
                    close(x)
                except BaseException:
                    pass

    # -- operations ----------------------------------------------------------

    def op_new_loop(self):
        r = self.rng
        if r.random() < 0.7:
            lp = core.loop(default=False)
        else:
            lp = core.loop(self.junk(), self.junk())
        if lp is not self.hub.loop:
            self.loops.append(lp)
        self.trim(self.loops, MAX_LOOPS, lambda l: l.destroy())

    def op_destroy_loop(self):
        lp = self.pick(self.loops)
        if lp is not None:
            lp.destroy()

    def op_run_private_loop(self):
        lp = self.pick(self.loops)
        if lp is None:
            return
        k = self.rng.randrange(3)
        if k == 0:
            lp.run(nowait=True)
        elif k == 1:
            # bounded: a timer on the same loop breaks it
            t = lp.timer(0.003)
            t.start(lp.break_)
            try:
                lp.run(once=self.rng.random() < 0.5)
            finally:
                t.close()
        else:
            t = lp.timer(0.003)
            t.start(lp.break_)
            try:
                lp.run(self.junk(), self.junk())
            finally:
                t.close()

    def op_new_watcher(self):
        r = self.rng
        lp = self.any_loop()
        kind = r.choice(['io', 'io', 'timer', 'timer', 'signal', 'idle', 'prepare', 'check',
                         'fork', 'async_', 'child', 'stat', 'junk'])
        if kind in EXCLUDE:
            kind = 'timer'
        junky = r.random() < 0.3
        kw = {}
        if r.random() < 0.3:
            kw['ref'] = r.choice([True, False, self.junk()])
        if kind == 'io':
            events = r.choice([1, 2, 3, 1, 0, -1, 4, 255, 2 ** 40]) if not junky else self.junk()
            w = lp.io(self.fd(), events, **kw)
        elif kind == 'timer':
            if junky:
                w = lp.timer(self.junk(), self.junk(), **kw)
            else:
                w = lp.timer(r.choice([0, 0.001, 0.002, 0.01, 5, self.num()]),
                             r.choice([0, 0, 0.001, 0.003, self.num()]), **kw)
        elif kind == 'signal':
            sig = r.choice([signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1, 0, -1, 9, 19,
                            signal.SIGCHLD, 65, 1000, 2 ** 40, signal.SIGPIPE, self.junk()])
            w = lp.signal(sig, **kw)
        elif kind == 'child':
            pid = r.choice([0, -1, os.getpid(), 1, 2 ** 22, 2 ** 40, self.junk()])
            w = lp.child(pid, r.choice([False, True, self.junk()]), **kw)
        elif kind == 'stat':
            path = r.choice(['/tmp', '/nonexistent/x', '', '.', self.junk()])
            w = lp.stat(path, r.choice([0.0, 0.01, -1, self.num()]), **kw)
        elif kind == 'junk':
            w = getattr(lp, r.choice(['idle', 'timer', 'io', 'prepare']))(
                *[self.junk() for _ in range(r.randrange(5))])
        else:
            if junky:
                w = getattr(lp, kind)(self.junk(), self.junk())
            else:
                w = getattr(lp, kind)(**kw)
        self.watchers.append(w)
        self.trim(self.watchers, MAX_WATCHERS, lambda w: w.close() if self.rng.random() < 0.5 else None)

    def op_watcher_start(self):
        w = self.pick(self.watchers)
        if w is None:
            return
        if self.rng.random() < 0.15:
            w.start(*[self.junk() for _ in range(self.rng.randrange(3))])
        else:
            w.start(self.callback(), *self.args())

    def op_watcher_misc(self):
        r = self.rng
        w = self.pick(self.watchers)
        if w is None:
            return
        k = r.randrange(16)
        if k == 0:
            w.stop()
        elif k == 1:
            w.close()
        elif k == 2:
            w.ref = self.junk() if r.random() < 0.3 else r.choice([True, False])
        elif k == 3:
            w.priority = self.junk() if r.random() < 0.5 else r.randint(-5, 5)
        elif k == 4:
            w.callback = self.junk() if r.random() < 0.5 else self.callback()
        elif k == 5:
            w.args = self.junk() if r.random() < 0.5 else self.args()
        elif k == 6:
            repr(w)
            (w.active, w.pending, w.callback, w.args, w.ref, w.priority, w.loop)
        elif k == 7:
            if hasattr(w, 'again'):
                w.again(self.callback(), *self.args())
            elif hasattr(w, 'send'):
                w.send()
            elif hasattr(w, 'feed'):
                w.feed(self.junk(), self.callback())
        elif k == 8:
            for name in ('fd', 'events', 'events_str', 'after', 'repeat', 'at', 'signum', 'pid',
                         'rpid', 'rstatus', 'path', 'attr', 'prev', 'interval'):
                if hasattr(type(w), name):
                    try:
                        getattr(w, name)
                    except Exception:
                        pass
        elif k == 9:
            for name in ('fd', 'events', 'repeat', 'rpid', 'rstatus', 'interval'):
                if hasattr(type(w), name):
                    setattr(w, name, self.junk())
                    break
        elif k == 10:
            with w:
                pass
        elif k == 11:
            # drop every reference we hold: an active watcher stays alive by
            # itself, an inactive one is collected
            self.watchers.remove(w)
        elif k == 12:
            w.start(self.callback(), *self.args())
            w.start(self.callback(), *self.args())
        elif k == 13:
            if hasattr(w, 'fd') and self.rng.random() < 0.5:
                # close the fd under the (maybe active) io watcher
                try:
                    fd = w.fd
                except Exception:
                    fd = None
                self.close_fd(fd)
            else:
                w.stop()
                w.close()
                w.close()
                w.start(self.callback())
        elif k == 14:
            type(w)(*[self.junk() for _ in range(r.randrange(4))])
        else:
            w.__init__(*[self.junk() for _ in range(r.randrange(4))])

    def op_run_callback(self):
        r = self.rng
        lp = self.any_loop()
        if r.random() < 0.2:
            cb = lp.run_callback(*[self.junk() for _ in range(r.randrange(3))])
        elif r.random() < 0.3:
            cb = lp.run_callback_threadsafe(self.callback(), *self.args())
        else:
            cb = lp.run_callback(self.callback(), *self.args())
        self.callbacks.append(cb)
        self.trim(self.callbacks, 40)

    def op_callback_misc(self):
        cb = self.pick(self.callbacks)
        if cb is None:
            return
        k = self.rng.randrange(4)
        if k == 0:
            cb.stop()
        elif k == 1:
            cb.close()
        elif k == 2:
            repr(cb), bool(cb), cb.pending, cb.callback, cb.args
        else:
            cb.callback = self.junk()

    def op_loop_misc(self):
        r = self.rng
        lp = self.any_loop()
        k = r.randrange(16)
        if k == 0:
            lp.ref()
            lp.unref()
        elif k == 1:
            lp.break_(self.junk() if r.random() < 0.3 else 1)
        elif k == 2:
            lp.update_now(), lp.now(), lp.update()
        elif k == 3:
            (lp.activecnt, lp.pendingcnt, lp.iteration, lp.depth, lp.backend, lp.default,
             lp.ptr, lp.fileno(), lp._format(), repr(lp))
        elif k == 4:
            lp.closing_fd(self.fd())
        elif k == 5:
            lp.handle_error(self.junk(), self.junk(), self.junk(), self.junk())
        elif k == 6:
            if lp is not self.hub.loop:
                lp.error_handler = self.junk()
            else:
                lp.error_handler
        elif k == 7:
            lp.verify()
        elif k == 8:
            if r.random() < 0.2:
                lp.reinit()
        elif k == 9:
            # re-entrant / foreign run of the hub's running loop
            self.hub.loop.run(nowait=True)
        elif k == 10:
            getattr(lp, 'async')()
        elif k == 11:
            lp.priority = 1  # no such attribute
        elif k == 12:
            core.loop(default=True)
        elif k == 13:
            lp.unref()
            self.guarded(lambda: H.sleep(0.001))
            lp.ref()
        else:
            lp.timer(0).start(self.callback())

    def op_waiter(self):
        r = self.rng
        k = r.randrange(12)
        if k == 0 or not self.waiters:
            hub = self.junk() if r.random() < 0.1 else None
            self.waiters.append(H.Waiter(hub) if hub is not None else H.Waiter())
            self.trim(self.waiters, 20)
            return
        w = r.choice(self.waiters)
        if k == 1:
            w.switch(self.junk())
        elif k == 2:
            w.throw(*[self.junk() for _ in range(r.randrange(4))])
        elif k == 3:
            self.guarded(w.get, self.small_time() or 0.001)
        elif k == 4:
            w.clear()
        elif k == 5:
            w.switch_args(*self.args())
        elif k == 6:
            w(self.junk())
        elif k == 7:
            str(w), repr(w), w.ready(), w.successful(), w.value, w.exc_info, w.greenlet, w.hub
        elif k == 8:
            self.hub.loop.run_callback(r.choice([w.switch, w.throw, w.get, w.clear]),
                                       *self.args())
            self.guarded(lambda: H.sleep(0))
        elif k == 9:
            w.switch()
        elif k == 10:
            # a greenlet blocks in get(); main then misuses it
            g = H.spawn_raw(w.get)
            self.greenlets.append(g)
            self.guarded(lambda: H.sleep(0))
            r.choice([w.switch, w.throw, w.get])(ValueError)
        else:
            w.switch_args()

    def op_sleep(self):
        r = self.rng
        k = r.randrange(5)
        if k == 0:
            self.guarded(lambda: H.sleep(self.junk(), self.junk()))
        elif k == 1:
            self.guarded(lambda: H.sleep(self.small_time(), r.choice([True, False])))
        elif k == 2:
            self.guarded(lambda: H.idle(self.junk()))
        elif k == 3:
            self.guarded(lambda: H.sleep(self.num()), 0.01)
        else:
            self.guarded(lambda: H.sleep(0))

    def op_spawn(self):
        r = self.rng
        k = r.randrange(6)
        if k == 0:
            g = H.spawn_raw(self.junk(), *self.args())
        elif k == 1:
            g = H.spawn_raw(lambda: H.sleep(self.small_time()))
        elif k == 2:
            g = H.spawn_raw(self.run_one)  # a random op from a non-main greenlet
        elif k == 3:
            g = H.spawn_raw(lambda: H.sleep(10))
        else:
            g = H.spawn_raw(self.callback(), *self.args())
        self.greenlets.append(g)
        self.trim(self.greenlets, 30)
        if r.random() < 0.5:
            self.guarded(lambda: H.sleep(0))

    def op_kill(self):
        r = self.rng
        target = r.choice([self.pick(self.greenlets), self.junk(),
                           self.pick(self.greenlets), self.main if r.random() < 0.2 else None])
        exc = r.choice([H.GreenletExit, ValueError, ValueError('x'), self.junk()])
        H.kill(target, exc)
        self.guarded(lambda: H.sleep(0))

    def op_hub_misc(self):
        r = self.rng
        hub = self.hub
        k = r.randrange(18)
        if k == 0:
            self.guarded(lambda: hub.join(r.choice([0, 0.001, -1, None]) if r.random() < 0.8
                                          else self.junk()))
        elif k == 1:
            w = self.pick(self.watchers)
            if w is not None:
                self.guarded(lambda: hub.wait(w), 0.005)
        elif k == 2:
            hub.cancel_wait(self.junk(), self.junk(), self.junk())
            self.guarded(lambda: H.sleep(0))
        elif k == 3:
            self.guarded(hub.switch, 0.002)
        elif k == 4:
            hub.handle_error(self.junk(), r.choice([ValueError, TypeError, None, self.junk()]),
                             self.junk(), None)
        elif k == 5:
            hub.print_exception(self.junk(), ValueError, ValueError('p'), None)
        elif k == 6:
            repr(hub), hub.name, hub.main_hub, hub.thread_ident, hub.loop, hub.dead
        elif k == 7:
            # a hub with junk constructor args, then destroy it
            h2 = H.Hub(*[self.junk() for _ in range(r.randrange(3))])
            self.hubs.append(h2)
            if r.random() < 0.5:
                h2.destroy(self.junk())
            self.trim(self.hubs, 4, lambda h: h.destroy())
        elif k == 8:
            saved = H._get_hub()
            H.set_hub(self.junk())
            try:
                r.choice([lambda: H.sleep(0), H.Waiter, lambda: H.spawn_raw(print),
                          H.get_hub, lambda: H.idle(), H.reinit])()
            finally:
                H.set_hub(saved)
        elif k == 9:
            if r.random() < 0.15:
                # destroy the driver's own hub (default loop kept or not)
                hub.destroy(r.choice([None, False, True]))
                self.refresh_hub()
        elif k == 10:
            hub.loop.run_callback(hub.destroy)
            self.guarded(lambda: H.sleep(0))
        elif k == 11:
            hub.run()
        elif k == 12:
            g = H.spawn_raw(lambda: hub.join())
            self.greenlets.append(g)
            self.guarded(lambda: H.sleep(0))
        elif k == 13:
            s = H.signal(r.choice([signal.SIGUSR1, signal.SIGUSR2, 0, self.junk()]),
                         self.callback(), *self.args())
            if r.random() < 0.5:
                os.kill(os.getpid(), signal.SIGUSR1)
                self.guarded(lambda: H.sleep(0.001))
            s.cancel()
            s.cancel()
        elif k == 14:
            # main is suspended until something switches back: guard it
            self.guarded(lambda: hub.throw(r.choice([ValueError, H.GreenletExit])), 0.01)
        elif k == 15:
            H.reinit(self.junk() if r.random() < 0.3 else None)
        elif k == 16:
            hub.switch_out()
        else:
            hub.resolver, hub.threadpool

    def op_threadpool(self):
        r = self.rng
        k = r.randrange(12)
        if k == 0 or not self.pools:
            pool = ThreadPool(r.choice([1, 2, 3, 0, -1, self.junk()]))
            self.pools.append(pool)
            self.trim(self.pools, 3, lambda p: p.kill())
            return
        pools = self.pools + [self.hub.threadpool]
        if 'deadhub' in EXCLUDE:
            # known bug F2 (docs/reliability.md): a full pool of a dead hub spins
            pools = [p for p in pools if not p.hub.dead]
        pool = r.choice(pools)
        fn = r.choice([lambda *a: None, _short_sleep, lambda *a: 1 / 0, self.junk(),
                       os.getpid, lambda *a: a])
        if k == 1:
            self.guarded(lambda: pool.spawn(fn, *r.choice([(), (0.001,), (self.junk(),)])).get(),
                         0.05)
        elif k == 2:
            self.guarded(lambda: pool.apply(fn, self.junk() if r.random() < 0.3 else (0,)), 0.05)
        elif k == 3:
            # spawn blocks while maxsize tasks are outstanding: guard it
            self.guarded(lambda: pool.spawn(time.sleep, r.choice([0, 0.001, 0.002])), 0.02)
        elif k == 4:
            pool.maxsize = self.junk() if r.random() < 0.5 else r.randint(-1, 4)
        elif k == 5:
            pool.size = self.junk() if r.random() < 0.5 else r.randint(-1, 4)
        elif k == 6:
            pool.kill()
        elif k == 7:
            self.guarded(lambda: pool.join(), 0.05)
        elif k == 8:
            self.guarded(lambda: list(pool.map(fn, r.choice([[], [1, 2], self.junk()]))), 0.05)
        elif k == 9:
            repr(pool), len(pool), pool.size, pool.maxsize
        elif k == 10:
            self.guarded(lambda: pool.apply_async(fn, (0,), None, self.callback()), 0.02)
        else:
            self.guarded(lambda: pool.apply_e(r.choice([ValueError, self.junk()]), fn, (0,)), 0.05)

    def op_new_fds(self):
        r = self.rng
        k = r.random()
        if k < 0.15:
            # a regular file: epoll refuses it, io watchers treat it as
            # always ready (two fds on one file, one of them read-only)
            import tempfile
            fd, path = tempfile.mkstemp(prefix='gevent_c_fuzz')
            os.unlink(path)
            os.write(fd, b'z' * r.randrange(0, 10))
            self.fds += [fd, os.open('/proc/self/fd/%d' % fd, os.O_RDONLY)]
        elif k < 0.55:
            a, b = os.pipe()
            self.fds += [a, b]
            if r.random() < 0.5:
                os.write(b, b'x' * r.randrange(1, 100))
        else:
            s1, s2 = socket.socketpair()
            a, b = s1.detach(), s2.detach()   # plain fds owned by self.fds
            self.fds += [a, b]
            if r.random() < 0.5:
                os.write(b, b'y')
        while len(self.fds) > MAX_FDS:
            self.close_fd(self.fds[0])

    def close_fd(self, fd):
        # Only fds this driver opened, and each only once: the number is
        # then remembered as stale (passed to io() later, never closed
        # again, since the OS may have reused it for one of libuv's own fds:
        # closing another component's fd is out of scope, see
        # docs/reliability.md).
        if fd not in self.fds:
            return
        self.fds.remove(fd)
        self.stale_fds.append(fd)
        del self.stale_fds[:-20]
        try:
            os.close(fd)
        except OSError:
            pass

    def op_close_fd(self):
        fd = self.pick(self.fds)
        if fd is None:
            return
        self.close_fd(fd)
        if self.rng.random() < 0.5:
            # the number is soon reused by a new pipe: a different file
            self.op_new_fds()

    def op_signal_self(self):
        sig = self.rng.choice([signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD])
        os.kill(os.getpid(), sig)
        self.guarded(lambda: H.sleep(self.rng.choice([0, 0.001])))

    def op_gc(self):
        r = self.rng
        k = r.randrange(4)
        if k == 0:
            gc.collect()
        elif k == 1:
            # drop a random share of everything we hold, then collect
            for lst in (self.watchers, self.waiters, self.callbacks, self.greenlets, self.hubs):
                for _ in range(len(lst) // 3):
                    lst.pop(r.randrange(len(lst)))
            gc.collect()
        elif k == 2:
            # GC from another thread while the loop polls without the GIL
            t = threading.Thread(target=gc.collect)
            t.start()
            self.guarded(lambda: H.sleep(0.002))
            t.join(5)
            assert not t.is_alive(), 'gc.collect in a thread hung'
        else:
            # make a reference cycle through a watcher's callback and drop it
            lp = self.any_loop()
            w = lp.timer(r.choice([0, 10]))
            holder = [w]
            w.start(lambda *a: holder, holder)
            if r.random() < 0.5:
                w.stop()
            del w, holder

    def op_thread(self):
        """A few random ops from another OS thread, while main sleeps (so the
        loop polls without the GIL)."""
        r = self.rng
        choices = [self.op_watcher_start, self.op_watcher_misc, self.op_run_callback,
                   self.op_loop_misc, self.op_waiter, self.op_callback_misc,
                   self.op_sleep_in_thread, self.op_new_watcher, self.op_threadpool]
        todo = [r.choice(choices) for _ in range(r.randrange(1, 4))]
        seeds = [r.random() for _ in todo]
        errs = self.in_thread_errors

        def body():
            for op, s in zip(todo, seeds):
                try:
                    # own Random: the main thread's stays deterministic
                    saved, self.rng = self.rng, random.Random(s)
                    try:
                        op()
                    finally:
                        self.rng = saved
                except BaseException as e:
                    errs[type(e).__name__] += 1
        t = threading.Thread(target=body)
        t.start()
        self.guarded(lambda: H.sleep(r.choice([0, 0.001, 0.003])))
        t.join(10)
        assert not t.is_alive(), 'a fuzz op in a thread hung'

    def op_sleep_in_thread(self):
        # the thread's own hub: created, used, destroyed when the thread exits
        H.sleep(self.rng.choice([0, 0.001]))
        if self.rng.random() < 0.3:
            H.get_hub().destroy()

    def _ops_table(self):
        return [
            (self.op_new_loop, 2), (self.op_destroy_loop, 1), (self.op_run_private_loop, 4),
            (self.op_new_watcher, 14), (self.op_watcher_start, 12), (self.op_watcher_misc, 14),
            (self.op_run_callback, 6), (self.op_callback_misc, 3), (self.op_loop_misc, 6),
            (self.op_waiter, 8), (self.op_sleep, 6), (self.op_spawn, 4), (self.op_kill, 2),
            (self.op_hub_misc, 5), (self.op_threadpool, 4), (self.op_new_fds, 2),
            (self.op_close_fd, 3), (self.op_signal_self, 1), (self.op_gc, 2),
            (self.op_thread, 3),
        ]

    # -- driver ----------------------------------------------------------------

    def run_one(self, nested=False):
        ops = self.ops
        if nested:
            # inside the hub / another greenlet: no op that would block main
            op, _ = self.rng.choice(ops)
            self.say('  nested %s in %s' % (op.__name__, _where()))
            try:
                op()
            except BaseException as e:
                self.errors['nested ' + type(e).__name__] += 1
                self._let_die(e)
            return
        total = sum(w for _, w in ops)
        x = self.rng.uniform(0, total)
        for op, w in ops:
            x -= w
            if x <= 0:
                break
        self.opcount += 1
        self.say(op.__name__)
        try:
            op()
        except BaseException as e:
            self.errors[type(e).__name__] += 1
            self._let_die(e)

    def _let_die(self, e):
        # A spawned greenlet that runs ops must die when killed (GreenletExit,
        # e.g. from its dealloc during a GC): one that swallows it and blocks
        # again is a user-level deadlock, not what we are testing.
        if isinstance(e, greenlet.GreenletExit) and greenlet.getcurrent() is not self.main:
            raise e

    def settle(self):
        """Close everything and let the loops finish cleanly."""
        close_all(self.watchers, 'close')
        close_all(self.pools, 'kill')
        close_all(self.hubs, 'destroy')
        close_all(self.loops, 'destroy')
        for _ in range(3):
            try:
                self.guarded(lambda: H.sleep(0.005), 0.5)
            except BaseException:
                pass
        del self.watchers[:], self.loops[:], self.callbacks[:], self.greenlets[:]
        del self.waiters[:], self.hubs[:], self.pools[:]
        gc.collect()


GreenletExit_ = H.GreenletExit


def _short_sleep(seconds=0, *rest):
    """A blocking task for the pool that never blocks for long: map() and
    apply() run it in the calling thread when that is not the pool's hub's,
    and time.sleep itself over junk like b'x' slept 120 s (the thread outlived
    the run and the interpreter waited for it at exit)."""
    if rest or not isinstance(seconds, (int, float)):
        raise TypeError('_short_sleep(seconds)')
    time.sleep(min(max(seconds, 0), 0.002))


def _where():
    g = greenlet.getcurrent()
    return type(g).__name__


def run(seed, nops, log, op_timeout):
    faulthandler.enable(file=sys.__stderr__, all_threads=True)
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda *a: None)
    fz = Fuzzer(seed, log)
    t0 = time.time()
    while fz.opcount < nops:
        faulthandler.dump_traceback_later(op_timeout, exit=True, file=sys.__stderr__)
        fz.run_one()
    faulthandler.dump_traceback_later(op_timeout * 3, exit=True, file=sys.__stderr__)
    fz.settle()
    faulthandler.cancel_dump_traceback_later()
    dt = time.time() - t0
    top = ', '.join('%s=%d' % kv for kv in fz.errors.most_common(12))
    sys.__stdout__.write('exceptions: %s\n' % top)
    sys.__stdout__.write('thread exceptions: %s\n' % ', '.join(
        '%s=%d' % kv for kv in fz.in_thread_errors.most_common(8)))
    sys.__stdout__.write('FUZZ OK seed=%d ops=%d time=%.1fs callbacks_run=%d\n'
                         % (seed, fz.opcount, dt, fz.hits))
    sys.__stdout__.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--seeds', default=None,
                    help="'1-20,31': run each seed in its own subprocess (long local run)")
    ap.add_argument('--ops', type=int, default=10000)
    ap.add_argument('--log', default=None, help='file receiving one line per op')
    ap.add_argument('--op-timeout', type=float, default=20.0)
    a = ap.parse_args()
    if a.seeds:
        failed = []
        for seed in parse_seeds(a.seeds):
            log = '/tmp/gevent_c_fuzz_%d.log' % seed
            t0 = time.time()
            p = subprocess.run([sys.executable, os.path.abspath(__file__), '--seed', str(seed),
                                '--ops', str(a.ops), '--log', log],
                               capture_output=True, text=True)
            ok = p.returncode == 0 and 'FUZZ OK' in p.stdout
            print('seed %d: %s (%.1fs)' % (seed, 'ok' if ok else 'FAILED rc=%d, log %s'
                                          % (p.returncode, log), time.time() - t0))
            if not ok:
                failed.append(seed)
                err = p.stderr
                # the C-level message (assert, abort) is at the top, the
                # Python thread dump below it
                print(p.stdout[-2000:], err if len(err) < 6000 else
                      err[:3000] + '\n[...]\n' + err[-3000:])
            sys.stdout.flush()
        print('failed seeds: %s' % (failed or 'none'))
        sys.exit(1 if failed else 0)
    seed = a.seed if a.seed is not None else int(time.time())
    if a.log:
        log = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    else:
        log = os.open(os.devnull, os.O_WRONLY)
    # Exceptions printed by the hub go to the Sink; keep real stderr for
    # faulthandler and crashes.
    sys.stderr = sys.stdout = Sink()
    run(seed, a.ops, log, a.op_timeout)
    os.close(log)


if __name__ == '__main__':
    main()
