"""Reference and object leaks of Waiter round trips, callbacks and timers."""
import gc
import sys

import gevent_c.hub as H
from _util import assert_no_leaks

N = 10000


def test_waiter_round_trips(loop):
    x = object()

    def cycle(n):
        for _ in range(n):
            w = H.Waiter()
            loop.run_callback(w.switch, x)
            assert w.get() is x

    assert_no_leaks(cycle, N, x, settle=lambda: H.sleep(0))


def test_waiter_reuse_with_clear(loop):
    x = object()
    w = H.Waiter()

    def cycle(n):
        for _ in range(n):
            w.clear()
            loop.run_callback(w.switch, x)
            assert w.get() is x

    assert_no_leaks(cycle, N, x, w, settle=lambda: H.sleep(0))


def test_waiter_throw_round_trips(loop):
    err = ValueError('e')

    def cycle(n):
        for _ in range(n):
            w = H.Waiter()
            loop.run_callback(w.throw, err)
            try:
                w.get()
            except ValueError:
                pass
            else:
                raise AssertionError

    def settle():
        H.sleep(0)
        err.__traceback__ = None

    assert_no_leaks(cycle, N, err, settle=settle)


def _timer_cycles(loop, body):
    arg = object()

    def f(*a):
        pass

    def cycle(n):
        for _ in range(n):
            body(loop.timer(10), f, arg)

    assert_no_leaks(cycle, N, f, arg, settle=lambda: H.sleep(0.01))  # close callbacks


def test_timer_start_stop_close(loop):
    def body(t, f, arg):
        t.start(f, arg)
        t.stop()
        t.close()
    _timer_cycles(loop, body)


def test_timer_start_close_while_active(loop):
    def body(t, f, arg):
        t.start(f, arg)
        t.close()
    _timer_cycles(loop, body)


def test_timer_fired_one_shot(loop):
    arg = object()
    hits = []

    def f(a):
        hits.append(1)

    def cycle(n):
        due = len(hits) + n
        for _ in range(n):
            t = loop.timer(0)
            t.start(f, arg)
        # the hub runs queued work in slices of a switch interval, so on a
        # loaded machine (ASan) a 10 ms sleep can end with timers still to
        # fire: wait until all of them have (bounded: ~5 s)
        for _ in range(500):
            H.sleep(0.01)
            if len(hits) >= due:
                break

    assert_no_leaks(cycle, 2000, f, arg, warm=100)
    assert len(hits) == 2100


def test_run_callback_cycles(loop):
    arg = object()

    def f(a):
        pass

    def cycle(n):
        for i in range(n):
            cb = loop.run_callback(f, arg)
            if i % 2:
                cb.stop()
        H.sleep(0)

    assert_no_leaks(cycle, N, f, arg)


def test_sleep_and_spawn_cycles(hub):
    arg = object()

    def f(a):
        H.sleep(0)

    def cycle(n):
        for _ in range(n):
            H.spawn_raw(f, arg)
        H.sleep(0)
        H.sleep(0)
        H.sleep(0.001)

    assert_no_leaks(cycle, 2000, arg, warm=100)


def test_hub_refcount_stable(loop, hub):
    H.sleep(0)
    gc.collect()  # garbage from earlier tests may still hold the hub
    rc = sys.getrefcount(hub)
    for _ in range(1000):
        w = H.Waiter()
        loop.run_callback(w.switch, 1)
        w.get()
        H.sleep(0)
    del w
    gc.collect()
    assert sys.getrefcount(hub) == rc
