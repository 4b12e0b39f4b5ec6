"""Leaks (docs/semantics.md, 'Watchers'): 10,000 create/start/stop/close cycles of
every watcher type leave len(gc.get_objects()) flat and the callback's and the
argument's refcounts unchanged. Timers are also covered by test_leaks.py.
child runs in a subprocess (it installs SIGCHLD handling on the default loop)."""
import gc
import os
import signal

import pytest

import gevent_c.core as core
import gevent_c.hub as H

from _util import WATCHER_KINDS, assert_no_leaks, watcher_factory

N = 10000


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


@pytest.fixture
def keep_sigusr2():
    old = signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGUSR2, old)


def _run_cycles(make, cycle_body, settle):
    arg = object()

    def f(*a):
        pass

    def cycle(n):
        for _ in range(n):
            cycle_body(make(), f, arg)

    assert_no_leaks(cycle, N, f, arg, settle=settle)


def _start_stop_close(w, f, arg):
    w.start(f, arg)
    w.stop()
    w.close()


def _start_close(w, f, arg):
    w.start(f, arg)
    w.close()


@pytest.mark.parametrize('kind', WATCHER_KINDS)
def test_start_stop_close_default_loop(kind, loop, pipe, keep_sigusr2):
    _run_cycles(watcher_factory(kind, loop, pipe[0]), _start_stop_close,
                lambda: H.sleep(0.02))  # let close callbacks run


@pytest.mark.parametrize('kind', WATCHER_KINDS)
def test_start_close_while_active(kind, loop, pipe, keep_sigusr2):
    _run_cycles(watcher_factory(kind, loop, pipe[0]), _start_close, lambda: H.sleep(0.02))


@pytest.mark.parametrize('kind', WATCHER_KINDS)
def test_start_stop_close_private_loop(kind, pipe, keep_sigusr2):
    lp = core.loop(default=False)
    try:
        _run_cycles(watcher_factory(kind, lp, pipe[0]), _start_stop_close,
                    lambda: lp.run(nowait=True))
    finally:
        lp.destroy()


def test_io_multiplexed_cycles(loop, pipe):
    # several watchers on one fd: attach/detach from the shared native poll
    r, w = pipe
    keep = loop.io(r, core.READ)
    keep.start(lambda: None)
    try:
        _run_cycles(lambda: loop.io(r, core.READ), _start_stop_close,
                    lambda: H.sleep(0.02))
    finally:
        keep.close()


def test_io_fired_cycles(loop, pipe):
    # the watcher fires (callback runs with the arg) before it is stopped
    r, w = pipe
    os.write(w, b'x')
    arg = object()
    hits = []

    def f(a, iow, waiter):
        hits.append(1)
        iow.stop()
        waiter.switch(None)

    def cycle(n):
        for _ in range(n):
            iow = loop.io(r, core.READ)
            waiter = H.Waiter()
            iow.start(f, arg, iow, waiter)
            waiter.get()
            iow.close()

    assert_no_leaks(cycle, 2000, f, arg, warm=100, settle=lambda: H.sleep(0.02))
    assert len(hits) == 2100


def test_async_send_cycles(loop):
    arg = object()
    hits = []

    def f(a):
        hits.append(1)

    def cycle(n):
        for _ in range(n):
            a = loop.async_()
            a.start(f, arg)
            a.send()
            H.sleep(0)
            a.close()

    assert_no_leaks(cycle, N, f, arg, warm=100, settle=lambda: H.sleep(0.02))


def test_run_callback_threadsafe_cycles(loop):
    arg = object()

    def f(a):
        pass

    def cycle(n):
        for _ in range(n):
            loop.run_callback_threadsafe(f, arg)
        H.sleep(0)

    assert_no_leaks(cycle, N, f, arg, settle=lambda: H.sleep(0.01))


def test_child_start_stop_close(check_py):
    check_py('''
        import os, sys
        from _util import assert_no_leaks
        import gevent_c.hub as H
        loop = H.get_hub().loop
        arg = object()
        def f(*a):
            pass
        def cycle(n):
            for _ in range(n):
                c = loop.child(os.getpid())
                c.start(f, arg)
                c.stop()
                c.close()
        assert_no_leaks(cycle, %d, f, arg, settle=lambda: H.sleep(0.02))
    ''' % N, timeout=15)


def test_signal_watchers_restore_handler_after_cycles(keep_sigusr2, loop):
    # after many start/stop cycles the Python-level handler is still in place
    def handler(s, f):
        pass

    signal.signal(signal.SIGUSR2, handler)
    for _ in range(1000):
        w = loop.signal(signal.SIGUSR2)
        w.start(lambda: None)
        w.stop()
        w.close()
    H.sleep(0.01)
    assert signal.getsignal(signal.SIGUSR2) is handler


def _malloc_in_use():
    import ctypes

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks',
            'uordblks', 'fordblks', 'keepcost')]
    libc = ctypes.CDLL(None)
    if not hasattr(libc, 'mallinfo2'):
        pytest.skip('glibc without mallinfo2')
    libc.mallinfo2.restype = Mallinfo2
    gc.collect()
    return libc.mallinfo2().uordblks


def test_destroyed_loop_frees_inactive_async_handles():
    # An inactive async_ watcher's handle has no back pointer (data NULL), so
    # the destroy walk used to close it without freeing it: about 128 bytes
    # of malloc per watcher per destroyed loop.
    def cycle():
        lp = core.loop(default=False)
        ws = [lp.async_() for _ in range(100)]
        ws[0].start(lambda: None)          # one active one too
        lp.destroy()
        for w in ws:
            w.close()
    for _ in range(20):
        cycle()
    before = _malloc_in_use()
    for _ in range(200):
        cycle()
    grown = _malloc_in_use() - before
    assert grown < 200 * 100 * 64 // 4, grown   # well under a handle per watcher
