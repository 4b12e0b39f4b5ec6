"""run_callback_threadsafe (docs/semantics.md, 'Callbacks'): callable from any thread, wakes a loop blocked
in poll, otherwise the same as run_callback (FIFO, callback object, errors)."""
import sys
import threading
import time

import pytest
from _util import noop as _noop

import gevent_c.core as core
import gevent_c.hub as H


def test_check_thread_wakes_blocked_hub(loop):
    # check: main blocks in w.get() while a started loop.timer(5) keeps the loop in
    # poll; a thread sleeps 0.05 s and calls run_callback_threadsafe(w.switch, 'ts')
    # -> w.get() == 'ts' within 1 s
    w = H.Waiter()
    t = loop.timer(5)
    t.start(_noop)
    th = threading.Thread(target=lambda: (time.sleep(0.05),
                                          loop.run_callback_threadsafe(w.switch, 'ts')))
    guard = loop.timer(3)
    guard.start(w.switch, 'timeout')
    try:
        t0 = time.monotonic()
        th.start()
        assert w.get() == 'ts'
        assert time.monotonic() - t0 < 1
    finally:
        th.join()
        t.close()
        guard.close()


def test_returns_callback_object(loop):
    log = []
    x = loop.run_callback_threadsafe(log.append, 1)
    assert type(x) is type(loop.run_callback(_noop))
    assert x.pending
    assert bool(x)
    assert x.callback == log.append
    assert x.args == (1,)
    H.sleep(0)
    assert log == [1]
    assert not x.pending
    assert not x


def test_stop_before_run(loop):
    log = []
    x = loop.run_callback_threadsafe(log.append, 1)
    x.stop()
    H.sleep(0)
    assert log == []
    assert x.callback is None


def test_not_callable_type_error(loop):
    with pytest.raises(TypeError):
        loop.run_callback_threadsafe(5)
    with pytest.raises(TypeError):
        loop.run_callback_threadsafe(None)


def test_not_callable_from_thread_type_error(loop):
    errs = []

    def run():
        try:
            loop.run_callback_threadsafe(5)
        except TypeError as e:
            errs.append(e)

    th = threading.Thread(target=run)
    th.start()
    th.join()
    assert len(errs) == 1


def test_kwargs_rejected(loop):
    with pytest.raises(TypeError):
        loop.run_callback_threadsafe(_noop, a=1)


def test_destroyed_loop_value_error():
    lp = core.loop(default=False)
    lp.destroy()
    with pytest.raises(ValueError) as ei:
        lp.run_callback_threadsafe(_noop)
    assert str(ei.value) == 'operation on destroyed loop'


def test_fifo_with_run_callback(loop):
    log = []
    loop.run_callback(log.append, 'a')
    loop.run_callback_threadsafe(log.append, 'b')
    loop.run_callback(log.append, 'c')
    H.sleep(0)
    assert log == ['a', 'b', 'c']


def test_private_loop_same_thread(L):
    log = []
    L.run_callback_threadsafe(log.append, 1)
    L.run()
    assert log == [1]


def test_private_loop_blocked_in_run_woken_by_thread(L):
    log = []
    t = L.timer(5)
    t.start(_noop)

    def from_loop():
        log.append(threading.get_ident())
        t.stop()

    th = threading.Timer(0.05, L.run_callback_threadsafe, (from_loop,))
    t0 = time.monotonic()
    th.start()
    L.run()
    th.join()
    assert log == [threading.get_ident()]  # ran in the loop's thread
    assert time.monotonic() - t0 < 2


def test_many_threads_all_run_once_in_order(loop):
    n_threads, per = 4, 500
    log = []
    main_ident = threading.get_ident()
    idents = []

    def rec(tid, i):
        idents.append(threading.get_ident())
        log.append((tid, i))

    def worker(tid):
        for i in range(per):
            loop.run_callback_threadsafe(rec, tid, i)

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    deadline = time.monotonic() + 2
    while len(log) < n_threads * per and time.monotonic() < deadline:
        H.sleep(0.001)
    assert len(log) == n_threads * per
    assert set(idents) == {main_ident}
    for k in range(n_threads):
        assert [i for tid, i in log if tid == k] == list(range(per))  # per-thread FIFO


def test_callback_error_goes_to_handle_error(L):
    calls = []

    class EH:
        def handle_error(self, ctx, t, v, tb):
            calls.append((type(ctx).__name__, t.__name__))

    L.error_handler = EH()
    th = threading.Thread(target=L.run_callback_threadsafe, args=(lambda: 1 / 0,))
    th.start()
    th.join()
    L.run()
    assert calls == [('callback', 'ZeroDivisionError')]


def test_exc_info_clean(loop):
    rec = []
    try:
        raise RuntimeError('main')
    except RuntimeError:
        th = threading.Thread(target=loop.run_callback_threadsafe,
                              args=(lambda: rec.append(sys.exc_info()),))
        th.start()
        th.join()
        H.sleep(0.01)
        assert sys.exc_info()[0] is RuntimeError
    assert rec == [(None, None, None)]


def test_threadsafe_keeps_loop_alive_until_run(L):
    log = []
    L.run_callback_threadsafe(log.append, 1)
    assert L.activecnt >= 1
    L.run()
    assert log == [1]
    assert L.activecnt == 0
