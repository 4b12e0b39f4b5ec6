"""Reference and object leaks of Waiter round trips, callbacks and timers."""
import gc
import sys

import gevent_c.hub as H

N = 10000
OBJ_SLACK = 50


def _count():
    gc.collect()
    gc.collect()
    return len(gc.get_objects())


def test_waiter_round_trips(loop):
    x = object()

    def cycle(n):
        for _ in range(n):
            w = H.Waiter()
            loop.run_callback(w.switch, x)
            assert w.get() is x

    cycle(200)
    H.sleep(0)
    n0 = _count()
    rc = sys.getrefcount(x)
    cycle(N)
    H.sleep(0)
    n1 = _count()
    assert sys.getrefcount(x) == rc
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


def test_waiter_reuse_with_clear(loop):
    x = object()
    w = H.Waiter()

    def cycle(n):
        for _ in range(n):
            w.clear()
            loop.run_callback(w.switch, x)
            assert w.get() is x

    cycle(200)
    H.sleep(0)
    n0 = _count()
    rc_x = sys.getrefcount(x)
    rc_w = sys.getrefcount(w)
    cycle(N)
    H.sleep(0)
    n1 = _count()
    assert sys.getrefcount(x) == rc_x
    assert sys.getrefcount(w) == rc_w
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


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

    cycle(200)
    H.sleep(0)
    err.__traceback__ = None
    n0 = _count()
    rc = sys.getrefcount(err)
    cycle(N)
    H.sleep(0)
    err.__traceback__ = None
    n1 = _count()
    assert sys.getrefcount(err) == rc
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


def test_timer_start_stop_close(loop):
    arg = object()

    def f(*a):
        pass

    def cycle(n):
        for _ in range(n):
            t = loop.timer(10)
            t.start(f, arg)
            t.stop()
            t.close()

    cycle(200)
    H.sleep(0.01)  # let close callbacks run
    n0 = _count()
    rc_f = sys.getrefcount(f)
    rc_arg = sys.getrefcount(arg)
    cycle(N)
    H.sleep(0.01)
    n1 = _count()
    assert sys.getrefcount(f) == rc_f
    assert sys.getrefcount(arg) == rc_arg
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


def test_timer_start_close_while_active(loop):
    arg = object()

    def f(*a):
        pass

    def cycle(n):
        for _ in range(n):
            t = loop.timer(10)
            t.start(f, arg)
            t.close()

    cycle(200)
    H.sleep(0.01)
    n0 = _count()
    rc_f = sys.getrefcount(f)
    rc_arg = sys.getrefcount(arg)
    cycle(N)
    H.sleep(0.01)
    n1 = _count()
    assert sys.getrefcount(f) == rc_f
    assert sys.getrefcount(arg) == rc_arg
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


def test_timer_fired_one_shot(loop):
    arg = object()
    hits = []

    def f(a):
        hits.append(1)

    def cycle(n):
        for _ in range(n):
            t = loop.timer(0)
            t.start(f, arg)
        H.sleep(0.01)

    cycle(100)
    n0 = _count()
    rc_f = sys.getrefcount(f)
    rc_arg = sys.getrefcount(arg)
    cycle(2000)
    n1 = _count()
    assert len(hits) == 2100
    assert sys.getrefcount(f) == rc_f
    assert sys.getrefcount(arg) == rc_arg
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


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

    cycle(200)
    n0 = _count()
    rc_f = sys.getrefcount(f)
    rc_arg = sys.getrefcount(arg)
    cycle(N)
    n1 = _count()
    assert sys.getrefcount(f) == rc_f
    assert sys.getrefcount(arg) == rc_arg
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


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

    cycle(100)
    n0 = _count()
    rc_arg = sys.getrefcount(arg)
    cycle(2000)
    n1 = _count()
    assert sys.getrefcount(arg) == rc_arg
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


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
