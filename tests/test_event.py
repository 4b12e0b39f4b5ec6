"""gevent_c.event.Event (docs/semantics.md, 'Event, AsyncResult and Timeout'),
plus leak checks."""
import gc
import re
import sys
import time

import pytest

import gevent_c.hub as H
from gevent_c.event import Event


def _set_later(e, delay):
    def f():
        H.sleep(delay)
        e.set()
    return H.spawn_raw(f)


# --- check lines ---------------------------------------------------------------------

def test_wait_timeout_and_set_by_greenlet():
    e = Event()
    assert not e.is_set()
    t0 = time.monotonic()
    assert e.wait(0.02) is False
    elapsed = time.monotonic() - t0
    assert 0.015 <= elapsed < 1, elapsed
    assert e.linkcount() == 0
    _set_later(e, 0.01)
    t0 = time.monotonic()
    assert e.wait() is True
    assert time.monotonic() - t0 < 1


def test_rawlink_non_callable():
    e = Event()
    with pytest.raises(TypeError) as ei:
        e.rawlink(5)
    assert str(ei.value) == 'Expected callable: 5'
    assert e.linkcount() == 0


def test_rawlink_notifies_in_hub_and_is_one_shot():
    e = Event()
    got = []
    e.rawlink(got.append)
    e.set()
    assert got == []
    H.sleep(0.01)
    assert got == [e]
    assert e.linkcount() == 0
    e.clear()
    e.set()
    H.sleep(0.01)
    assert len(got) == 1


def test_unlink_unknown_is_ignored():
    e = Event()
    assert e.unlink(lambda x: None) is None


def test_set_then_clear_wakes_waiter_with_true():
    e = Event()
    res = []
    H.spawn_raw(lambda: res.append(e.wait()))
    H.sleep(0)
    assert e.linkcount() == 1
    e.set()
    e.clear()
    H.sleep(0.01)
    assert res == [True]
    assert not e.is_set()


def test_rawlink_then_unlink_not_called():
    e = Event()
    called = []

    def f(x):
        called.append(x)

    e.rawlink(f)
    assert e.linkcount() == 1
    e.unlink(f)
    assert e.linkcount() == 0
    e.set()
    H.sleep(0.01)
    assert called == []


# --- other behaviour of section 9.1 ----------------------------------------------------

def test_flag_accessors():
    e = Event()
    assert (e.is_set(), e.isSet(), e.ready()) == (False, False, False)
    e.set()
    assert (e.is_set(), e.isSet(), e.ready()) == (True, True, True)
    e.clear()
    assert (e.is_set(), e.isSet(), e.ready()) == (False, False, False)


def test_wait_when_set_returns_at_once():
    e = Event()
    e.set()
    t0 = time.monotonic()
    assert e.wait() is True
    assert e.wait(5) is True
    assert time.monotonic() - t0 < 0.1


def test_rawlink_when_already_set_is_scheduled():
    e = Event()
    e.set()
    got = []
    e.rawlink(got.append)
    assert got == []
    H.sleep(0)
    assert got == [e]


def test_links_called_in_order():
    e = Event()
    got = []
    for i in range(5):
        e.rawlink(lambda ev, i=i: got.append(i))
    e.set()
    H.sleep(0)
    assert got == [0, 1, 2, 3, 4]


def test_many_waiters_all_woken():
    e = Event()
    res = []
    for i in range(20):
        H.spawn_raw(lambda i=i: res.append((i, e.wait())))
    H.sleep(0)
    assert e.linkcount() == 20
    e.set()
    H.sleep(0.01)
    assert res == [(i, True) for i in range(20)]
    assert e.linkcount() == 0


def test_link_unlinking_a_later_link():
    e = Event()
    got = []

    def second(ev):
        got.append('second')

    def first(ev):
        got.append('first')
        ev.unlink(second)

    e.rawlink(first)
    e.rawlink(second)
    e.set()
    H.sleep(0)
    assert got == ['first']
    assert e.linkcount() == 0


def test_link_added_during_notification_runs_later():
    e = Event()
    got = []

    def first(ev):
        got.append('first')
        ev.rawlink(lambda ev2: got.append('added'))

    e.rawlink(first)
    e.set()
    H.sleep(0.01)
    assert got == ['first', 'added']
    assert e.linkcount() == 0


def test_raising_link_reported_and_others_still_called(hub):
    e = Event()
    errors = []
    hub.handle_error = lambda ctx, t, v, tb: errors.append((ctx, t))
    got = []

    def bad(ev):
        raise ValueError('boom')

    e.rawlink(bad)
    e.rawlink(got.append)
    e.set()
    H.sleep(0.01)
    assert errors == [((bad, e), ValueError)]
    assert got == [e]


def test_raising_link_printed(stream):
    e = Event()

    def bad(ev):
        raise ValueError('boom')

    e.rawlink(bad)
    e.set()
    H.sleep(0.01)
    last = [line for line in stream.getvalue().splitlines() if line.strip()][-1]
    assert last.endswith('failed with ValueError'), last
    assert 'Event' in last


def test_str_forms():
    e = Event()
    pat = r'^<(\S+\.)?Event( at 0x[0-9a-f]+)? %s _links\[%d\]>$'
    assert re.match(pat % ('clear', 0), str(e)), str(e)
    e.rawlink(lambda x: None)
    assert re.match(pat % ('clear', 1), str(e)), str(e)
    e.set()
    assert re.match(pat % ('set', 1), str(e)), str(e)
    H.sleep(0)
    assert re.match(pat % ('set', 0), str(e)), str(e)


def test_unlink_stops_pending_notification(loop):
    e = Event()
    f = lambda ev: None  # noqa: E731
    e.rawlink(f)
    e.set()
    n = e._notifier
    assert n is not None and n.pending
    e.unlink(f)
    assert not n.pending
    assert e._notifier is None
    H.sleep(0)


def test_wait_in_hub_raises_blocking_switch_out(loop, stream):
    e = Event()
    loop.run_callback(e.wait)
    H.sleep(0.01)
    last = [line for line in stream.getvalue().splitlines() if line.strip()][-1]
    assert last.endswith('failed with BlockingSwitchOutError'), last
    assert e.linkcount() == 0


def test_wait_killed_greenlet_unlinks():
    e = Event()
    res = []

    def f():
        try:
            e.wait(10)
        except H.GreenletExit:
            res.append('killed')

    g = H.spawn_raw(f)
    H.sleep(0)
    assert e.linkcount() == 1
    H.kill(g)
    H.sleep(0)
    assert res == ['killed']
    assert g.dead
    assert e.linkcount() == 0
    # The 10 s timer was closed: it does not keep the loop busy.
    t0 = time.monotonic()
    assert H.get_hub().join(timeout=3) is True
    assert time.monotonic() - t0 < 1


def test_no_hub_links_called_synchronously(check_py):
    out = check_py('''
        import gevent_c.hub as H
        from gevent_c.event import Event, AsyncResult
        e = Event()
        got = []
        e.rawlink(got.append)
        e.set()
        assert got == [e], got
        assert H._get_hub() is None
        a = AsyncResult()
        a.rawlink(got.append)
        a.set(3)
        assert got == [e, a], got
        assert a.get() == 3 and e.wait() is True
        assert H._get_hub() is None
        print('ok')
    ''', timeout=10)
    assert out.strip() == 'ok'


def test_hub_picked_up_lazily(check_py):
    out = check_py('''
        import gevent_c.hub as H
        from gevent_c.event import Event
        e = Event()
        assert e.hub is None
        assert H._get_hub() is None
        assert e.wait(0.001) is False
        assert e.hub is H._get_hub() is not None
        print('ok')
    ''', timeout=10)
    assert out.strip() == 'ok'


def test_wait_from_main_loop_exit(run_py):
    p = run_py('''
        import gevent_c.hub as H
        from gevent_c.event import Event
        e = Event()
        try:
            e.wait()
        except H.LoopExit:
            assert e.linkcount() == 0
            print('LoopExit')
    ''', timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == 'LoopExit'


def test_wait_timeout_keeps_loop_alive_in_main(run_py):
    p = run_py('''
        import gevent_c.hub as H
        from gevent_c.event import Event
        print(Event().wait(0.01))
    ''', timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == 'False'


def test_slots_no_dict():
    e = Event()
    with pytest.raises(AttributeError):
        e.foo = 1
    import weakref
    assert weakref.ref(e)() is e


# --- leaks ----------------------------------------------------------------------------

N = 10000
OBJ_SLACK = 50


def _count():
    gc.collect()
    gc.collect()
    return len(gc.get_objects())


def test_leak_set_wait_cycles():
    e = Event()
    done = []

    def waiter():
        while True:
            e.wait()
            e.clear()
            done.append(1)
            if len(done) >= stop[0]:
                return

    def cycle(n):
        stop[0] = len(done) + n
        g = H.spawn_raw(waiter)
        H.sleep(0)
        while not g.dead:
            e.set()
            H.sleep(0)
        assert len(done) == stop[0]

    stop = [0]
    cycle(200)
    n0 = _count()
    rc = sys.getrefcount(e)
    cycle(N)
    n1 = _count()
    assert sys.getrefcount(e) == rc
    assert e.linkcount() == 0
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


def test_leak_wait_timeouts():
    e = Event()

    def cycle(n):
        for _ in range(n):
            assert e.wait(0) is False

    cycle(100)
    n0 = _count()
    rc = sys.getrefcount(e)
    cycle(2000)
    n1 = _count()
    assert sys.getrefcount(e) == rc
    assert e.linkcount() == 0
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


def test_leak_fresh_events_and_links():
    def cycle(n):
        got = []
        for _ in range(n):
            e = Event()
            e.rawlink(got.append)
            e.set()
            H.sleep(0)
        assert len(got) == n

    cycle(200)
    n0 = _count()
    cycle(N)
    n1 = _count()
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


def test_event_freed_without_gc():
    # Waiting and notification leave no reference cycle behind.
    import weakref
    e = Event()
    H.spawn_raw(e.set)
    assert e.wait() is True
    H.sleep(0)  # let the hub finish the notification pass that woke us
    r = weakref.ref(e)
    gc.disable()
    try:
        del e
        assert r() is None
    finally:
        gc.enable()
