"""Hub.join(timeout=None, event=None) with a real gevent_c Event."""
import time

import gevent_c.hub as H
from gevent_c.event import Event, AsyncResult


def test_join_event_set_by_greenlet(loop, hub):
    t = loop.timer(5)
    t.start(lambda: None)
    e = Event()

    def setter():
        H.sleep(0.02)
        e.set()

    try:
        H.spawn_raw(setter)
        t0 = time.monotonic()
        assert hub.join(event=e) is False
        assert time.monotonic() - t0 < 1
        assert e.linkcount() == 0
    finally:
        t.close()


def test_join_event_already_set(hub):
    e = Event()
    e.set()
    t0 = time.monotonic()
    assert hub.join(timeout=10, event=e) is False
    assert time.monotonic() - t0 < 0.5
    assert e.linkcount() == 0


def test_join_event_never_set_loop_runs_out(hub):
    e = Event()
    t0 = time.monotonic()
    assert hub.join(event=e) is True
    assert time.monotonic() - t0 < 0.5
    assert e.linkcount() == 0


def test_join_event_and_timeout_timeout_first(loop, hub):
    t = loop.timer(5)
    t.start(lambda: None)
    e = Event()
    try:
        t0 = time.monotonic()
        assert hub.join(timeout=0.03, event=e) is False
        assert 0.025 <= time.monotonic() - t0 < 1
        assert e.linkcount() == 0
        assert not e.is_set()
    finally:
        t.close()


def test_join_asyncresult_event(loop, hub):
    t = loop.timer(5)
    t.start(lambda: None)
    a = AsyncResult()
    try:
        loop.run_callback(a.set, 'v')
        assert hub.join(event=a) is False
        assert a.linkcount() == 0
    finally:
        t.close()


def test_join_event_in_fresh_interpreter(check_py):
    out = check_py('''
        import time
        import gevent_c.hub as H
        from gevent_c.event import Event
        hub = H.get_hub()
        e = Event()
        t = hub.loop.timer(5)
        t.start(lambda: None)
        def setter():
            H.sleep(0.01)
            e.set()
        H.spawn_raw(setter)
        t0 = time.monotonic()
        r = hub.join(event=e)
        print(r, time.monotonic() - t0 < 1, e.linkcount())
        t.close()
        print(hub.join())
    ''', timeout=10)
    assert out.split() == ['False', 'True', '0', 'True']
