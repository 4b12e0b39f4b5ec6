"""GC torture: a mixed workload under ``gc.set_threshold(1)``, so
that a collection can run at (almost) every allocation, inside every dealloc
and every finalizer.

Watchers in reference cycles, callbacks that close their own watcher or try
to destroy their (non-default) loop, finalizers (``__del__``) that call
``gc.collect()``, Waiters in cycles, hubs on non-default loops dropped in
cycles, thread pools created and killed.  Bounded by counts (a few seconds
here; this file also runs under ASan, see tests/reliability/asan.sh, which runs
the whole suite).  Each workload runs in a subprocess: it must exit 0 and
print nothing to stderr.
"""
import subprocess
import sys
import textwrap

import pytest

import _util


def _run(code, timeout=120):
    return subprocess.run(
        [sys.executable, '-X', 'faulthandler', '-c', textwrap.dedent(code)],
        cwd=_util.TESTS, env=_util._clean_env(), capture_output=True, text=True,
        timeout=timeout)


def _check(p, expect=None):
    assert p.returncode == 0, 'exited %r\n--- stdout ---\n%s\n--- stderr ---\n%s' % (
        p.returncode, p.stdout[-2000:], p.stderr[-6000:])
    assert p.stderr == '', p.stderr[-6000:]
    if expect is not None:
        assert p.stdout.strip().splitlines()[-1:] == [expect], p.stdout[-2000:]


ITEM1 = r'''
import gc
from gevent_c.core import loop
from gevent_c.hub import Hub


class S(object):
    def write(self, s):
        pass

    def __del__(self):
        gc.collect()


l = loop(default=False)
h = Hub(loop=l)
del l
h.exception_stream = S()
del h
gc.collect()
print('done')
'''


def test_item1_hub_dealloc_finalizer_collects():
    """A hub dealloc whose exception_stream's
    ``__del__`` runs a GC pass (Hub_dealloc cleared fields before untracking:
    segfault)."""
    _check(_run(ITEM1), 'done')


ITEM1_LOOP = r'''
import gc
from gevent_c.core import loop
from gevent_c.hub import Hub


class S(object):
    def write(self, s):
        pass

    def __del__(self):
        gc.collect()


gc.set_threshold(1)
for _ in range(50):
    l = loop(default=False)
    h = Hub(loop=l)
    del l
    h.exception_stream = S()
    del h
gc.collect()
print('done')
'''


def test_item1_under_threshold_1():
    """Item 1 with the collector running at every allocation, 50 times."""
    _check(_run(ITEM1_LOOP), 'done')


TORTURE = r'''
import gc, os, sys, threading
import gevent_c.hub as H
import gevent_c.core as core
from gevent_c.threadpool import ThreadPool

ROUNDS = int(sys.argv[1])
errors = []


class Collects(object):
    """A finalizer that runs a GC pass."""
    def __init__(self, payload=None):
        self.payload = payload
        self.me = self                  # in a cycle: freed by the collector

    def write(self, s):
        pass

    def __del__(self):
        gc.collect()


class CollectsNow(object):
    """A finalizer that runs a GC pass, in no cycle: it runs inside the
    dealloc that drops the last reference."""
    def __init__(self, payload=None):
        self.payload = payload

    def write(self, s):
        pass

    def __del__(self):
        gc.collect()


class Handler(object):
    """A loop error handler that records (the workload's own errors are expected)."""
    def handle_error(self, context, typ, value, tb):
        if not issubclass(typ, RuntimeError):
            errors.append(repr(value))


def noop(*args):
    pass


def private_loop_round(i):
    l = core.loop(default=False)
    l.error_handler = Handler()
    ws = []
    # a watcher in a cycle through its args, with a collecting finalizer
    t = l.timer(0)
    box = [t, Collects()]
    t.start(noop, box)
    ws.append(t)
    # a callback that closes its own watcher
    t2 = l.timer(0)
    t2.start(lambda *a: t2.close(), CollectsNow())
    # a callback that tries to destroy its loop (refused while it runs)
    t3 = l.timer(0)
    t3.start(l.destroy)
    # idle/prepare/check/async_/fork watchers, each in a cycle
    for make in (l.idle, l.prepare, l.check, l.async_, l.fork):
        w = make()
        cyc = [w, Collects()]
        w.start(lambda c=cyc: c[0].stop(), cyc)
        ws.append(w)
    a = l.async_()
    a.start(noop)
    a.send()
    # run_callback objects holding finalizers; one stops another
    cbs = [l.run_callback(noop, Collects(), CollectsNow()) for _ in range(3)]
    l.run_callback(cbs[2].stop)
    l.run(once=True)
    l.run(nowait=True)
    if i % 3 == 0:
        l.destroy()                     # with watchers still open
    elif i % 3 == 1:
        for w in ws:
            w.close()
    # else: dropped with live watchers in cycles: the collector frees them
    del ws, box, cbs, t, t2, t3, a, l


def hub_round(i):
    # a hub on a non-default loop, dropped in a cycle
    h = H.Hub(loop=core.loop(default=False))    # the hub holds the only reference
    h.exception_stream = CollectsNow()
    if i % 3 == 0:
        h.cycle = [h, Collects(h.loop)]  # freed by the collector
    elif i % 3 == 1:
        h.destroy(destroy_loop=True)
    # else: freed by its last reference going away (the hub-dealloc path above)
    del h


def waiter_round(hub):
    w = H.Waiter(hub)
    w.switch(w)                         # its value is itself: a cycle
    w2 = H.Waiter(hub)
    hub.loop.run_callback(w2.switch, Collects(w2))
    w2.get()
    w3 = H.Waiter(hub)
    w3.throw(ValueError, ValueError(Collects(w3)))
    del w, w2, w3


def pool_round(hub):
    pool = ThreadPool(2)
    res = pool.spawn(sum, (1, 2))
    assert res.get() == 3
    pool.cycle = [pool, Collects()]
    pool.kill()
    del pool, res


gc.set_threshold(1)
hub = H.get_hub()
hub.exception_stream = Collects()
for i in range(ROUNDS):
    private_loop_round(i)
    hub_round(i)
    waiter_round(hub)
    if i % 10 == 0:
        pool_round(hub)
    # the main hub runs too, with a timer in a cycle whose callback closes it
    t = hub.loop.timer(0)
    t.start(lambda *a: t.close(), Collects(t), CollectsNow())
    H.sleep(0)
    del t
# a thread's hub, dropped at thread exit with watchers in cycles
def in_thread():
    h = H.get_hub()
    w = h.loop.timer(10)
    w.start(noop, [w, Collects()])
    H.sleep(0.001)
for _ in range(3):
    th = threading.Thread(target=in_thread)
    th.start()
    th.join()
gc.collect()
gc.set_threshold(700)
H.sleep(0.001)
assert not errors, errors
print('done')
'''


@pytest.mark.timeout(180)
def test_gc_torture():
    """The mixed workload, bounded by a round count (under a second here)."""
    _check(_run(TORTURE.replace("int(sys.argv[1])", "120")), 'done')
