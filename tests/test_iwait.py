"""iwait / wait and linkproxy (docs/semantics.md, 'iwait and wait')."""
import gc
import sys
import time

import pytest

import gevent_c.hub as H
from gevent_c._wait import iwait, wait, linkproxy
from gevent_c.event import Event, AsyncResult


def _later(delay, func, *args):
    def f():
        H.sleep(delay)
        func(*args)
    return H.spawn_raw(f)


# --- check lines ---------------------------------------------------------------------

def test_wait_count_and_readiness_order():
    e1, e2 = Event(), Event()
    _later(0.02, e2.set)
    _later(0.04, e1.set)
    assert wait([e1, e2], count=1) == [e2]
    assert e1.linkcount() == 0 and e2.linkcount() == 0
    assert wait([e1, e2]) == [e2, e1]


def test_wait_timeout_none_ready():
    t0 = time.monotonic()
    assert wait([Event()], timeout=0.03) == []
    elapsed = time.monotonic() - t0
    assert 0.025 <= elapsed < 1, elapsed


def test_wait_none_is_join(loop):
    assert wait() is True
    t = loop.timer(5)
    t.start(lambda: None)
    try:
        t0 = time.monotonic()
        assert wait(timeout=0.02) is False
        assert time.monotonic() - t0 < 1
    finally:
        t.close()


def test_iwait_context_manager_unlinks():
    a, b = AsyncResult(), AsyncResult()
    _later(0.01, a.set, 1)
    _later(0.02, b.set, 2)
    with iwait([a, b]) as it:
        first = next(it)
        assert first is a
        assert b.linkcount() == 1
    assert a.linkcount() == 0 and b.linkcount() == 0
    H.sleep(0.03)  # b's setter finishes; nothing is left to notify
    assert b.linkcount() == 0


def test_wait_from_main_loop_exit(run_py):
    p = run_py('''
        import gevent_c.hub as H
        from gevent_c._wait import wait
        from gevent_c.event import Event
        e = Event()
        try:
            wait([e])
        except H.LoopExit:
            assert e.linkcount() == 0
            print('LoopExit')
    ''', timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == 'LoopExit'


def test_linkproxy_calls_once_and_drops_references():
    calls = []
    obj = object()

    def cb(x):
        calls.append(x)

    rc = sys.getrefcount(obj)
    p = linkproxy(cb, obj)
    assert p.callback is cb and p.obj is obj
    assert p(1, 2, 3) is None
    assert calls == [obj]
    assert p.callback is None and p.obj is None
    p('again')
    assert calls == [obj]
    del calls[:]
    assert sys.getrefcount(obj) == rc


# --- other behaviour of section 3.10 ---------------------------------------------------

def test_iwait_links_all_objects_even_with_count_1():
    a, b, c = Event(), Event(), Event()
    it = iwait([a, b, c], count=1)
    _later(0.01, c.set)
    assert next(it) is c
    # count reached: everything is unlinked
    assert (a.linkcount(), b.linkcount(), c.linkcount()) == (0, 0, 0)
    with pytest.raises(StopIteration):
        next(it)


def test_iwait_links_all_while_waiting():
    a, b = Event(), Event()
    seen = []

    def consumer():
        it = iwait([a, b], count=1)
        seen.extend(it)

    H.spawn_raw(consumer)
    H.sleep(0)
    assert a.linkcount() == 1 and b.linkcount() == 1
    b.set()
    H.sleep(0.01)
    assert seen == [b]
    assert a.linkcount() == 0 and b.linkcount() == 0


def test_iwait_already_ready_objects():
    a, b = Event(), Event()
    b.set()
    a.set()
    # Both are ready at once; the order follows the link order.
    assert wait([a, b]) == [a, b]


def test_iwait_several_ready_before_consumer_runs():
    # All three become ready in one notification pass, while the consumer
    # is busy elsewhere; none may be lost.
    evs = [Event() for _ in range(3)]
    it = iwait(evs)
    _later(0.01, lambda: [e.set() for e in evs])
    got = [next(it)]
    H.sleep(0.02)
    got.extend(it)
    assert got == evs


def test_iwait_yields_in_readiness_order():
    rs = [AsyncResult() for _ in range(4)]
    for delay, r in zip((0.03, 0.01, 0.04, 0.02), rs):
        _later(delay, r.set, delay)
    out = list(iwait(rs))
    assert out == [rs[1], rs[3], rs[0], rs[2]]


def test_iwait_timeout_stops_silently_and_cleans_up(loop):
    a, b = Event(), Event()
    _later(0.01, a.set)
    t0 = time.monotonic()
    out = list(iwait([a, b], timeout=0.05))
    elapsed = time.monotonic() - t0
    assert out == [a]
    assert 0.04 <= elapsed < 1, elapsed
    assert b.linkcount() == 0


def test_iwait_with_block_stops_timer():
    a = Event()
    a.set()
    with iwait([a, Event()], timeout=10) as it:
        assert next(it) is a
    # The 10 s timer was closed by __exit__: the loop has nothing to wait for.
    t0 = time.monotonic()
    assert H.get_hub().join(timeout=3) is True
    assert time.monotonic() - t0 < 1


def test_iwait_consumer_stops_early_without_with():
    a, b = Event(), Event()
    a.set()
    for x in iwait([a, b], timeout=10):
        assert x is a
        break
    assert b.linkcount() == 0
    t0 = time.monotonic()
    assert H.get_hub().join(timeout=3) is True
    assert time.monotonic() - t0 < 1


def test_iwait_unused_links_nothing():
    a = Event()
    with iwait([a]):
        assert a.linkcount() == 0
    assert a.linkcount() == 0


def test_iwait_needs_len():
    with pytest.raises(TypeError):
        iwait(e for e in [Event()])


def test_iwait_none_returns_join_list(loop):
    assert iwait(None) == [True]
    t = loop.timer(5)
    t.start(lambda: None)
    try:
        assert iwait(None, 0.01) == [False]
    finally:
        t.close()


def test_iwait_count_zero_and_empty():
    a = Event()
    assert wait([a], count=0) == []
    assert a.linkcount() == 0
    assert wait([]) == []
    assert list(iwait([], timeout=1)) == []


def test_iwait_killed_consumer_cleans_up():
    a = Event()
    res = []

    def consumer():
        try:
            wait([a], timeout=10)
        except H.GreenletExit:
            res.append('killed')

    g = H.spawn_raw(consumer)
    H.sleep(0)
    assert a.linkcount() == 1
    H.kill(g)
    H.sleep(0)
    assert res == ['killed'] and a.linkcount() == 0
    t0 = time.monotonic()
    assert H.get_hub().join(timeout=3) is True
    assert time.monotonic() - t0 < 1


def test_iwait_in_hub_blocking_error(loop, stream):
    a = Event()
    loop.run_callback(wait, [a])
    H.sleep(0.01)
    last = [line for line in stream.getvalue().splitlines() if line.strip()][-1]
    assert last.endswith('failed with BlockingSwitchOutError'), last
    assert a.linkcount() == 0


def test_iwait_mixed_duplicate_object():
    a = Event()
    _later(0.01, a.set)
    assert wait([a, a]) == [a, a]
    assert a.linkcount() == 0


def test_wait_generic_wait_protocol_object(loop):
    class Obj(object):
        def __init__(self):
            self.links = []

        def rawlink(self, cb):
            self.links.append(cb)

        def unlink(self, cb):
            if cb in self.links:
                self.links.remove(cb)

        def fire(self):
            for cb in self.links[:]:
                self.links.remove(cb)
                cb(self)

    o1, o2 = Obj(), Obj()
    loop.run_callback(o2.fire)
    assert wait([o1, o2], count=1) == [o2]
    assert o1.links == [] and o2.links == []


def test_iwait_leaks():
    def cycle(n):
        for _ in range(n):
            a, b = Event(), Event()
            a.set()
            with iwait([a, b], timeout=5) as it:
                assert next(it) is a

    cycle(100)
    gc.collect()
    n0 = len(gc.get_objects())
    cycle(3000)
    gc.collect()
    n1 = len(gc.get_objects())
    assert n1 - n0 < 50, (n0, n1)


def test_iwait_bad_object_unlinks_the_others():
    a = Event()
    with pytest.raises(AttributeError):
        wait([a, object()])
    assert a.linkcount() == 0
