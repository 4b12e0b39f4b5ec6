"""gevent_c.event.AsyncResult (docs/semantics.md, 'Event, AsyncResult and Timeout')."""
import gc
import re
import sys
import time
import traceback
import types

import pytest

import gevent_c.hub as H
from gevent_c.event import AsyncResult, Timeout
from gevent_c.timeout import Timeout as Timeout2


# --- check lines ---------------------------------------------------------------------

def test_unset_state_and_timeouts():
    a = AsyncResult()
    assert not a.ready()
    assert not a.successful()
    assert a.value is None
    assert a.exception is None
    with pytest.raises(Timeout) as ei:
        a.get(block=False)
    assert str(ei.value) == ''
    t0 = time.monotonic()
    with pytest.raises(Timeout) as ei:
        a.get(timeout=0.01)
    assert str(ei.value) == '0.01 seconds'
    assert ei.value.seconds == 0.01
    assert 0.009 <= time.monotonic() - t0 < 1
    t0 = time.monotonic()
    assert a.wait(0.01) is None
    assert 0.009 <= time.monotonic() - t0 < 1
    assert a.linkcount() == 0


def test_set_by_greenlet():
    a = AsyncResult()

    def f():
        H.sleep(0.01)
        a.set(7)

    H.spawn_raw(f)
    t0 = time.monotonic()
    assert a.get() == 7
    assert time.monotonic() - t0 < 1
    assert a.successful()
    assert a.value == 7


def test_set_exception():
    b = AsyncResult()
    b.set_exception(KeyError('k'))
    assert b.ready()
    assert not b.successful()
    assert isinstance(b.exception, KeyError)
    assert b.value is None
    with pytest.raises(KeyError):
        b.get()
    assert b.wait() is None


def test_last_set_wins():
    c = AsyncResult()
    c.set(1)
    c.set(2)
    assert c.get() == 2


def test_get_from_main_loop_exit(run_py):
    p = run_py('''
        import gevent_c.hub as H
        from gevent_c.event import AsyncResult
        a = AsyncResult()
        try:
            a.get()
        except H.LoopExit:
            assert a.linkcount() == 0
            print('LoopExit')
    ''', timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == 'LoopExit'


# --- other behaviour of section 9.2 ----------------------------------------------------

def test_timeout_reexported():
    assert Timeout is Timeout2


def test_set_default_none():
    a = AsyncResult()
    a.set()
    assert a.ready() and a.successful()
    assert a.get() is None
    assert a.exc_info == ()


def test_exc_info_forms():
    a = AsyncResult()
    assert a.exc_info == ()
    err = KeyError('k')
    a.set_exception(err)
    assert len(a.exc_info) == 3
    assert a.exc_info[0] is KeyError and a.exc_info[1] is err


def test_set_exception_with_exc_info_keeps_traceback():
    def inner():
        raise ValueError('deep')

    try:
        inner()
    except ValueError:
        info = sys.exc_info()
    a = AsyncResult()
    a.set_exception(info[1], info)
    assert a.exc_info == info
    with pytest.raises(ValueError) as ei:
        a.get()
    names = [f.name for f in traceback.extract_tb(ei.value.__traceback__)]
    assert 'inner' in names
    # A second get() raises again (the result stays stored).
    with pytest.raises(ValueError):
        a.get()


def test_get_nowait():
    a = AsyncResult()
    with pytest.raises(Timeout):
        a.get_nowait()
    a.set('x')
    assert a.get_nowait() == 'x'


def test_exception_then_value_last_wins():
    a = AsyncResult()
    a.set_exception(KeyError('k'))
    a.set(5)
    assert a.successful() and a.get() == 5 and a.exception is None
    a.set_exception(ValueError('v'))
    assert not a.successful() and a.value is None
    with pytest.raises(ValueError):
        a.get()


def test_get_raises_exception_set_later():
    a = AsyncResult()

    def f():
        H.sleep(0.01)
        a.set_exception(ZeroDivisionError('z'))

    H.spawn_raw(f)
    with pytest.raises(ZeroDivisionError):
        a.get()


def test_wait_returns_value_or_none():
    a = AsyncResult()
    H.spawn_raw(a.set, 'v')
    assert a.wait() == 'v'
    b = AsyncResult()
    H.spawn_raw(b.set_exception, KeyError('k'))
    assert b.wait() is None
    assert b.ready()


def test_call_link_protocol():
    a = AsyncResult()
    a(types.SimpleNamespace(successful=lambda: True, value=3))
    assert a.get() == 3
    b = AsyncResult()
    err = KeyError('k')
    b(types.SimpleNamespace(successful=lambda: False, exception=err, value=None))
    assert b.exception is err
    with pytest.raises(KeyError):
        b.get()


def test_chained_via_rawlink():
    src, dst = AsyncResult(), AsyncResult()
    src.rawlink(dst)
    src.set(42)
    assert dst.get(timeout=1) == 42


def test_rawlink_unlink_linkcount():
    a = AsyncResult()
    got = []
    a.rawlink(got.append)
    f = lambda x: None  # noqa: E731
    a.rawlink(f)
    assert a.linkcount() == 2
    a.unlink(f)
    assert a.linkcount() == 1
    a.set(1)
    assert got == []
    H.sleep(0)
    assert got == [a]
    assert a.linkcount() == 0
    with pytest.raises(TypeError):
        a.rawlink(None)
    assert a.unlink(object()) is None


def test_many_waiters():
    a = AsyncResult()
    res = []
    for i in range(10):
        H.spawn_raw(lambda i=i: res.append((i, a.get())))
    H.sleep(0)
    assert a.linkcount() == 10
    a.set('v')
    H.sleep(0.01)
    assert res == [(i, 'v') for i in range(10)]


def test_futures_aliases():
    a = AsyncResult()
    assert not a.done()
    assert a.cancel() is False and a.cancelled() is False
    a.set_result(9)
    assert a.done() and a.result() == 9
    b = AsyncResult()
    with pytest.raises(Timeout):
        b.result(timeout=0.001)


def test_str_forms():
    a = AsyncResult()
    assert re.match(r'^<AsyncResult unset +_links\[0\]>$', str(a)), str(a)
    a.rawlink(lambda x: None)
    assert re.match(r'^<AsyncResult unset +_links\[1\]>$', str(a)), str(a)
    a.set(3)
    assert re.match(r'^<AsyncResult value=3 +_links\[1\]>$', str(a)), str(a)
    H.sleep(0)
    b = AsyncResult()
    b.set_exception(KeyError('k'))
    assert re.match(r"^<AsyncResult .*exception=KeyError\('k'\) +_links\[0\]>$", str(b)), str(b)


def test_get_timeout_unlinks_and_stops_timer():
    a = AsyncResult()
    with pytest.raises(Timeout):
        a.get(timeout=0.001)
    assert a.linkcount() == 0
    t0 = time.monotonic()
    assert H.get_hub().join(timeout=3) is True
    assert time.monotonic() - t0 < 1


def test_leak_set_get_cycles():
    def cycle(n):
        for _ in range(n):
            a = AsyncResult()
            H.get_hub().loop.run_callback(a.set, 1)
            assert a.get() == 1

    cycle(200)
    gc.collect()
    n0 = len(gc.get_objects())
    cycle(10000)
    gc.collect()
    n1 = len(gc.get_objects())
    assert n1 - n0 < 50, (n0, n1)
