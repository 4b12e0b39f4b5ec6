"""Hub.wait(watcher) and Hub.cancel_wait(watcher, error, close_watcher=False)."""
import time

import pytest

import gevent_c.hub as H


def test_wait_timer(loop, hub):
    t = loop.timer(0.01)
    t0 = time.monotonic()
    try:
        assert hub.wait(t) is None
        el = time.monotonic() - t0
        assert t.active is False
    finally:
        t.close()
    assert 0.009 <= el < 1, el


def test_wait_replaces_callback_of_started_watcher(loop, hub):
    log = []
    t = loop.timer(0.01)
    t.start(log.append, 'original')
    try:
        hub.wait(t)
        H.sleep(0.02)
        assert log == []
        assert t.active is False
    finally:
        t.close()


def test_wait_from_callback_is_blocking_switch_out(loop, stream):
    t = loop.timer(0.01)
    loop.run_callback(hub_wait_helper, t)
    H.sleep(0.02)
    t.close()
    lines = [l for l in stream.getvalue().splitlines() if l.strip()]
    assert lines and lines[-1].endswith('failed with BlockingSwitchOutError'), stream.getvalue()


def hub_wait_helper(t):
    H.get_hub().wait(t)


def test_cancel_wait(loop, hub):
    t = loop.timer(10)
    got = []

    def waiter():
        try:
            hub.wait(t)
        except Exception as e:  # noqa: BLE001
            got.append(e)

    g = H.spawn_raw(waiter)
    H.sleep(0)
    try:
        assert t.active
        assert t.callback is not None
        err = ValueError('cancelled')
        assert hub.cancel_wait(t, err) is None
        assert got == []  # asynchronous
        H.sleep(0)
        H.sleep(0)
        assert got == [err]
        assert t.active is False
        assert g.dead
    finally:
        t.close()


def test_cancel_wait_close_watcher(loop, hub):
    t = loop.timer(10)
    got = []

    def waiter():
        try:
            hub.wait(t)
        except Exception as e:  # noqa: BLE001
            got.append(e)

    H.spawn_raw(waiter)
    H.sleep(0)
    hub.cancel_wait(t, KeyError('c'), close_watcher=True)
    H.sleep(0)
    H.sleep(0)
    assert len(got) == 1 and isinstance(got[0], KeyError)
    try:
        with pytest.raises(ValueError):
            t.start(lambda: None)  # closed
    finally:
        t.close()


def test_cancel_wait_nobody_waiting(loop, hub):
    t = loop.timer(1)
    assert hub.cancel_wait(t, ValueError()) is None
    H.sleep(0)
    t.start(lambda: None)  # not closed
    t.close()


def test_cancel_wait_nobody_waiting_close(loop, hub):
    t = loop.timer(1)
    assert hub.cancel_wait(t, ValueError(), True) is None
    try:
        with pytest.raises(ValueError):
            t.start(lambda: None)
    finally:
        t.close()


def test_cancel_wait_none(hub):
    assert hub.cancel_wait(None, ValueError()) is None
    H.sleep(0)


def test_wait_invalid_switch(loop, hub):
    got = []

    def g_body():
        g = H.getcurrent()
        loop.run_callback(g.switch, 'unexpected')
        t = loop.timer(10)
        try:
            hub.wait(t)
        except Exception as e:  # noqa: BLE001
            got.append((e, t.active))
        finally:
            t.close()

    g = H.spawn_raw(g_body)
    H.sleep(0.01)
    assert g.dead
    assert len(got) == 1
    e, active = got[0]
    assert isinstance(e, H.InvalidSwitchError)
    assert isinstance(e, AssertionError)
    assert "got 'unexpected'" in str(e), str(e)
    assert active is False  # the watcher is stopped before raising


def test_wait_stops_watcher_when_killed(loop, hub):
    t = loop.timer(10)
    g = H.spawn_raw(hub.wait, t)
    H.sleep(0)
    assert t.active
    H.kill(g)
    H.sleep(0)
    assert g.dead
    assert t.active is False
    t.close()
