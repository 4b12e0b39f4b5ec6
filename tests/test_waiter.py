"""Waiter (docs/semantics.md, 'Waiter')."""
import re
import time
import types

import greenlet
import pytest

import gevent_c.hub as H
from _util import last_line

SWITCH_TEXT = 'Can only use Waiter.switch method from the Hub greenlet'


def test_hub_argument(hub):
    assert H.Waiter().hub is hub
    assert H.Waiter(hub).hub is hub
    assert H.Waiter(None).hub is hub


def test_fresh_state(hub):
    w = H.Waiter()
    assert w.greenlet is None
    assert w.value is None
    assert w.exc_info is None
    assert not w.ready()
    assert not w.successful()
    assert str(w) == '<Waiter greenlet=None>'


def test_documented_example_1(loop):
    r = H.Waiter()
    t = loop.timer(0.1)
    try:
        t0 = time.monotonic()
        t.start(r.switch, 'hello from Waiter')
        assert r.get() == 'hello from Waiter'
        elapsed = time.monotonic() - t0
    finally:
        t.close()
    assert 0.09 <= elapsed < 1, elapsed


def test_documented_example_2(loop):
    r = H.Waiter()
    t = loop.timer(0.1)
    try:
        t.start(r.switch, 'hi from Waiter')
        H.sleep(0.2)
        t0 = time.monotonic()
        assert r.get() == 'hi from Waiter'
        elapsed = time.monotonic() - t0
    finally:
        t.close()
    assert elapsed < 0.05, elapsed


def test_switch_before_get(hub):
    w = H.Waiter()
    assert w.switch(25) is None
    assert str(w) == '<Waiter greenlet=None value=25>'
    assert w.ready()
    assert w.successful()
    assert w.value == 25
    assert w.exc_info is None
    assert w.get() == 25
    assert w.get() == 25  # the result stays stored
    assert w.greenlet is None


def test_str_value_uses_repr(hub):
    w = H.Waiter()
    w.switch('s')
    assert str(w) == "<Waiter greenlet=None value='s'>"


def test_clear(hub):
    w = H.Waiter()
    w.switch(25)
    w.clear()
    assert not w.ready()
    assert not w.successful()
    assert w.value is None
    assert w.exc_info is None
    assert str(w) == '<Waiter greenlet=None>'


def test_throw_before_get(hub):
    w = H.Waiter()
    w.throw(ZeroDivisionError)
    assert re.match(r'^<Waiter greenlet=None exc_info=.*ZeroDivisionError.*>$', str(w)), str(w)
    assert w.ready()
    assert not w.successful()
    assert w.exc_info == (ZeroDivisionError,)
    with pytest.raises(ZeroDivisionError):
        w.get()
    with pytest.raises(ZeroDivisionError):
        w.get()  # still stored
    assert w.greenlet is None


def test_str_exc_info_exact(hub):
    w = H.Waiter()
    err = ValueError('boom')
    w.throw(ValueError, err)
    assert str(w) == "<Waiter greenlet=None exc_info=(<class 'ValueError'>, ValueError('boom'))>"
    with pytest.raises(ValueError) as ei:
        w.get()
    assert ei.value is err


def test_str_uses_type_name(hub):
    class MyWaiter(H.Waiter):
        pass

    w = MyWaiter()
    assert str(w) == '<MyWaiter greenlet=None>'


def test_switch_args(hub):
    w = H.Waiter()
    w.switch_args(1, 2)
    assert w.get() == (1, 2)


def test_switch_no_argument_stores_none(hub):
    w = H.Waiter()
    w.switch()
    assert w.ready()
    assert w.successful()
    assert w.get() is None


def test_get_blocks_until_switched_from_hub(loop):
    w = H.Waiter()
    loop.run_callback(w.switch, 'v')
    assert w.get() == 'v'
    assert w.greenlet is None


def test_get_raises_thrown_while_waiting(loop):
    w = H.Waiter()
    loop.run_callback(w.throw, ValueError('thrown'))
    with pytest.raises(ValueError, match='thrown'):
        w.get()
    assert w.greenlet is None


def test_str_while_waiting(loop):
    w = H.Waiter()
    seen = []

    def waiter():
        seen.append(w.get())

    g = H.spawn_raw(waiter)
    H.sleep(0)
    assert w.greenlet is g
    assert str(w) == '<Waiter greenlet=%s>' % (g,)
    loop.run_callback(w.switch, 'x')
    H.sleep(0)
    assert seen == ['x']
    assert w.greenlet is None
    assert g.dead


def test_misuse(loop):
    w = H.Waiter()
    got = []

    def first():
        got.append(('first', w.get()))

    def second():
        try:
            w.get()
        except Exception as e:  # noqa: BLE001
            got.append(('second', e))

    g1 = H.spawn_raw(first)
    H.sleep(0)
    assert w.greenlet is g1

    # switch/throw from a non-hub greenlet while a greenlet waits
    with pytest.raises(AssertionError) as ei:
        w.switch(1)
    assert str(ei.value) == SWITCH_TEXT
    with pytest.raises(AssertionError) as ei:
        w.throw(ValueError)
    assert str(ei.value) == SWITCH_TEXT  # the same text, mentioning "switch"
    assert w.greenlet is g1
    assert not g1.dead

    # a second consumer
    g2 = H.spawn_raw(second)
    H.sleep(0)
    assert g2.dead
    assert len(got) == 1 and got[0][0] == 'second'
    err = got[0][1]
    assert isinstance(err, H.ConcurrentObjectUseError)
    assert str(err).startswith('This Waiter is already used by ')
    assert w.greenlet is g1

    # the hub can still wake the first greenlet
    loop.run_callback(w.switch, 'v')
    H.sleep(0)
    assert got[1] == ('first', 'v')
    assert g1.dead


def test_get_in_callback_blocking_switch_out(loop, stream):
    loop.run_callback(H.Waiter().get)
    H.sleep(0.01)
    assert last_line(stream).endswith('failed with BlockingSwitchOutError'), stream.getvalue()


def test_get_loop_exit_fresh(check_py):
    check_py('''
        import gevent_c.hub as H
        try:
            H.Waiter().get()
        except H.LoopExit as e:
            assert e.args[0] == 'This operation would block forever'
        else:
            raise AssertionError('no LoopExit')
    ''', timeout=10)


def test_call_link_protocol_value(hub):
    w = H.Waiter()
    w(types.SimpleNamespace(exception=None, value='v'))
    assert w.get() == 'v'


def test_call_link_protocol_exception(hub):
    w2 = H.Waiter()
    w2(types.SimpleNamespace(exception=KeyError('k'), value=None))
    assert len(w2.exc_info) == 1
    assert type(w2.exc_info[0]) is KeyError
    assert w2.exc_info[0].args == ('k',)
    with pytest.raises(KeyError):
        w2.get()


def test_call_uses_exception_attribute_not_successful(hub):
    # successful() would say False here, but .exception is None -> switch(value)
    src = types.SimpleNamespace(exception=None, value=7, successful=lambda: False)
    w = H.Waiter()
    w(src)
    assert w.get() == 7


def test_call_wakes_waiting_greenlet(loop):
    w = H.Waiter()
    loop.run_callback(w, types.SimpleNamespace(exception=None, value='linked'))
    assert w.get() == 'linked'


def test_switch_target_dies_with_error(loop, stream):
    w = H.Waiter()

    def f():
        w.get()
        raise RuntimeError('after get')

    g = H.spawn_raw(f)
    H.sleep(0)
    loop.run_callback(w.switch, 1)
    H.sleep(0.01)  # main is not interrupted
    line = last_line(stream)
    assert line.endswith('failed with RuntimeError'), stream.getvalue()
    assert 'switch' in line, line
    assert g.dead


def test_throw_target_dies_with_error(loop, stream):
    w = H.Waiter()

    def f():
        try:
            w.get()
        except KeyError:
            raise RuntimeError('after throw')

    g = H.spawn_raw(f)
    H.sleep(0)
    loop.run_callback(w.throw, KeyError('k'))
    H.sleep(0.01)
    line = last_line(stream)
    assert line.endswith('failed with RuntimeError'), stream.getvalue()
    assert 'throw' in line, line
    assert g.dead


def test_get_resets_greenlet_when_killed(hub):
    w = H.Waiter()
    g = H.spawn_raw(w.get)
    H.sleep(0)
    assert w.greenlet is g
    H.kill(g)
    H.sleep(0)
    assert g.dead
    assert w.greenlet is None
    assert not w.ready()
    # the waiter is reusable afterwards
    hub.loop.run_callback(w.switch, 'again')
    assert w.get() == 'again'


def test_waiter_not_a_greenlet():
    assert not isinstance(H.Waiter(), greenlet.greenlet)


def test_waiter_value_cycle_collected(hub):
    import gc
    import weakref

    class Holder:
        pass

    h = Holder()
    h.w = H.Waiter()
    h.w.switch(h)
    r = weakref.ref(h)
    del h
    gc.collect()
    assert r() is None


def test_waiter_exc_info_cycle_collected(hub):
    import gc
    import weakref

    class Holder(Exception):
        pass

    h = Holder()
    h.w = H.Waiter()
    h.w.throw(h)
    r = weakref.ref(h)
    del h
    gc.collect()
    assert r() is None
