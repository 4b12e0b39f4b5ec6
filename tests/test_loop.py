"""Loop methods and properties, run_callback and the callback object, errors
inside the loop (docs/semantics.md, 'The loop and callbacks')."""
import re
import sys
import time
import warnings

import pytest
from _util import noop as _noop

import gevent_c.core as core
import gevent_c.hub as H


class Recorder:
    def __init__(self):
        self.calls = []

    def handle_error(self, context, type, value, tb):
        self.calls.append((context, type, value, tb))


# ---- construction / default


def test_loop_class_exported(hub):
    assert isinstance(hub.loop, core.loop)


def test_hub_loop_is_default(loop):
    assert loop.default is True


def test_new_non_default_loop():
    lp = core.loop(default=False)
    try:
        assert lp.default is False
        assert lp.error_handler is None
    finally:
        lp.destroy()


def test_second_default_wrapper(check_py):
    check_py('''
        import gevent_c.core as core
        import gevent_c.hub as H
        hub = H.get_hub()
        lp = core.loop()
        assert lp.default is True
        del lp
        import gc; gc.collect()
        assert hub.loop.default is True
        H.sleep(0.001)   # the hub's default loop still works
    ''', timeout=10)


# ---- run()


def test_run_callback_on_non_default_loop(L):
    log = []
    L.run_callback(log.append, 1)
    assert L.run() is None
    assert log == [1]


def test_run_returns_when_nothing_to_do(L):
    t0 = time.monotonic()
    L.run()
    assert time.monotonic() - t0 < 0.5


def test_run_waits_for_timer(L):
    log = []
    t = L.timer(0.02)
    t.start(log.append, 'fired')
    t0 = time.monotonic()
    L.run()
    assert log == ['fired']
    assert time.monotonic() - t0 >= 0.019


def test_run_nowait_does_not_block(L):
    t = L.timer(5)
    t.start(_noop)
    try:
        t0 = time.monotonic()
        L.run(nowait=True)
        assert time.monotonic() - t0 < 0.5
        assert t.active
    finally:
        t.stop()


def test_run_nowait_wins_over_once(L):
    t = L.timer(5)
    t.start(_noop)
    try:
        t0 = time.monotonic()
        L.run(nowait=True, once=True)
        assert time.monotonic() - t0 < 0.5
    finally:
        t.stop()


def test_run_once_blocks_for_one_event(L):
    log = []
    t1 = L.timer(0.02)
    t1.start(log.append, 1)
    t2 = L.timer(5)
    t2.start(_noop)
    try:
        t0 = time.monotonic()
        L.run(once=True)
        elapsed = time.monotonic() - t0
        assert log == [1]
        assert 0.015 <= elapsed < 1, elapsed
        assert t2.active
    finally:
        t2.stop()


def test_run_nowait_runs_queued_callbacks(L):
    log = []
    L.run_callback(log.append, 1)
    L.run(nowait=True)
    assert log == [1]


def test_reentrant_run_raises_runtime_error(check_py):
    check_py('''
        import gevent_c.core as core
        L = core.loop(default=False)
        calls = []
        class EH:
            def handle_error(self, ctx, t, v, tb):
                calls.append(t)
        L.error_handler = EH()
        L.run_callback(lambda: L.run())
        L.run()
        assert calls == [RuntimeError], calls
        L.destroy()
    ''', timeout=10)


def test_reentrant_run_in_hub_reaches_handle_error(check_py):
    check_py('''
        import io
        import gevent_c.hub as H
        hub = H.get_hub()
        s = io.StringIO()
        hub.exception_stream = s
        hub.loop.run_callback(hub.loop.run)
        H.sleep(0.01)
        lines = [l for l in s.getvalue().splitlines() if l.strip()]
        assert lines and lines[-1].endswith('failed with RuntimeError'), s.getvalue()
        H.sleep(0.001)
    ''', timeout=10)


# ---- time


def test_now_is_float_and_update_now(loop):
    n0 = loop.now()
    assert isinstance(n0, float)
    time.sleep(0.02)
    assert loop.update_now() is None
    n1 = loop.now()
    assert n1 - n0 >= 0.015, (n0, n1)


def test_update_alias_without_warning(loop):
    n0 = loop.now()
    time.sleep(0.02)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert loop.update() is None
    assert loop.now() - n0 >= 0.015


def test_now_cached_until_updated(L):
    L.update_now()
    n0 = L.now()
    time.sleep(0.02)
    assert L.now() == n0


def test_now_advances_across_sleep(loop):
    n0 = loop.now()
    H.sleep(0.05)
    assert loop.now() - n0 >= 0.04


# ---- properties


def test_depth(L):
    seen = []
    assert L.depth == 0
    L.run_callback(lambda: seen.append(L.depth))
    L.run()
    assert seen == [1]
    assert L.depth == 0


def test_depth_in_hub(loop):
    seen = []
    loop.run_callback(lambda: seen.append(loop.depth))
    H.sleep(0)
    assert seen == [1]


def test_iteration(L):
    i0 = L.iteration
    assert isinstance(i0, int) and i0 >= 0
    L.run(nowait=True)
    i1 = L.iteration
    assert i1 > i0
    L.run(nowait=True)
    assert L.iteration > i1


def test_iteration_grows_across_sleep(loop):
    i0 = loop.iteration
    H.sleep(0.01)
    assert loop.iteration > i0


def test_activecnt(L):
    assert L.activecnt == 0
    t = L.timer(5)
    t.start(_noop)
    assert L.activecnt == 1
    t.ref = False
    assert L.activecnt == 0
    t.ref = True
    assert L.activecnt == 1
    L.run_callback(_noop)
    assert L.activecnt == 2
    t.stop()


def test_activecnt_ref_unref(L):
    assert L.activecnt == 0
    L.ref()
    assert L.activecnt == 1
    L.unref()
    assert L.activecnt == 0


def test_break(L):
    count = []
    t = L.timer(0.01, 0.01)

    def tick():
        count.append(1)
        if len(count) == 3:
            L.break_()

    t.start(tick)
    try:
        L.run()
        assert len(count) == 3
        assert t.active is True
    finally:
        t.stop()


def test_unref_lets_run_return(L):
    t = L.timer(5)
    t.start(_noop)
    L.unref()
    try:
        t0 = time.monotonic()
        L.run()
        assert time.monotonic() - t0 < 0.5
    finally:
        L.ref()
        t.stop()


def test_error_handler_read_write(L):
    assert L.error_handler is None
    r = Recorder()
    L.error_handler = r
    assert L.error_handler is r
    L.error_handler = None
    assert L.error_handler is None


def test_error_handler_is_hub_inside_callback(loop, hub):
    seen = []
    loop.run_callback(lambda: seen.append(loop.error_handler))
    H.sleep(0)
    assert seen == [hub]


# ---- destroy


def test_destroy(check_py):
    # run in a fresh interpreter: destroying loops is a lifecycle operation
    check_py('''
        import gevent_c.core as core
        L = core.loop(default=False)
        assert L.destroy() is None
        assert L.destroy() is None
        assert L.default is False
        assert 'destroyed' in repr(L)
        for fn in (L.run, lambda: L.run_callback(print), L.break_, lambda: L.timer(1)):
            try:
                fn()
            except ValueError as e:
                assert str(e) == 'operation on destroyed loop', str(e)
            else:
                raise AssertionError('no ValueError from %r' % fn)
        try:
            L.activecnt
        except ValueError:
            pass
        else:
            raise AssertionError('activecnt on destroyed loop')
    ''', timeout=10)


def test_destroy_with_queued_callback(L):
    log = []
    L.run_callback(log.append, 1)
    L.destroy()
    assert log == []
    with pytest.raises(ValueError):
        L.run()


def test_repr(L):
    r = repr(L)
    assert r.startswith('<loop at 0x'), r
    assert r.endswith('>')


# ---- run_callback and the callback object


def test_callback_object_lifecycle(loop):
    calls = []
    f = lambda: calls.append(1)  # noqa: E731
    x = loop.run_callback(f)
    assert bool(x)
    assert x.pending
    assert x.callback is f
    assert x.args == ()
    H.sleep(0)
    assert calls == [1]
    assert not x
    assert not x.pending
    y = loop.run_callback(f)
    y.stop()
    assert not y
    assert not y.pending
    assert y.callback is None
    assert y.args is None
    H.sleep(0)
    assert calls == [1]


def test_callback_close_alias(loop):
    calls = []
    y = loop.run_callback(calls.append, 1)
    y.close()
    assert not y
    assert y.callback is None
    H.sleep(0)
    assert calls == []


def test_callback_args(loop):
    log = []
    x = loop.run_callback(log.append, 'a')
    assert x.args == ('a',)
    assert x.callback == log.append
    H.sleep(0)
    assert log == ['a']


def test_callback_fifo(loop):
    log = []
    for i in range(5):
        loop.run_callback(log.append, i)
    H.sleep(0)
    assert log == [0, 1, 2, 3, 4]


def test_callback_nested_order(loop):
    log = []

    def outer():
        log.append('outer')
        loop.run_callback(log.append, 'inner')

    loop.run_callback(outer)
    loop.run_callback(log.append, 'second')
    H.sleep(0.001)
    assert log == ['outer', 'second', 'inner']


def test_callback_nested_order_non_default(L):
    log = []

    def outer():
        log.append('outer')
        L.run_callback(log.append, 'inner')

    L.run_callback(outer)
    L.run_callback(log.append, 'second')
    L.run()
    assert log == ['outer', 'second', 'inner']


def test_callback_state_while_running(loop):
    holder = []
    seen = []

    def f(arg):
        cb = holder[0]
        seen.append((bool(cb), cb.pending, repr(cb)))

    holder.append(loop.run_callback(f, 'A'))
    pending_repr = repr(holder[0])
    H.sleep(0)
    stopped_repr = repr(holder[0])
    assert re.match(r"^<callback at 0x[0-9a-f]+ pending callback=.* args=\('A',\)>$",
                    pending_repr), pending_repr
    assert len(seen) == 1
    running_bool, running_pending, running_repr = seen[0]
    assert running_bool is True
    assert running_pending is False
    assert re.match(r"^<callback at 0x[0-9a-f]+ args=\('A',\)>$", running_repr), running_repr
    assert re.match(r'^<callback at 0x[0-9a-f]+ stopped>$', stopped_repr), stopped_repr


def test_callback_repr_after_stop(loop):
    x = loop.run_callback(_noop)
    x.stop()
    assert re.match(r'^<callback at 0x[0-9a-f]+ stopped>$', repr(x)), repr(x)


def test_run_callback_not_callable(loop):
    with pytest.raises(TypeError):
        loop.run_callback(5)
    with pytest.raises(TypeError):
        loop.run_callback(None)
    H.sleep(0)


def test_run_callback_rejects_kwargs(loop):
    with pytest.raises(TypeError):
        loop.run_callback(_noop, a=1)


def test_stopped_callback_does_not_keep_loop_alive(L):
    log = []
    cb = L.run_callback(log.append, 1)
    cb.stop()
    t0 = time.monotonic()
    L.run()
    assert time.monotonic() - t0 < 0.5
    assert log == []


# ---- errors inside the loop


def test_error_handler_object_gets_callback_context(L):
    class EH:
        def __init__(self):
            self.calls = []

        def handle_error(self, ctx, t, v, tb):
            self.calls.append((type(ctx).__name__, t.__name__))

    eh = EH()
    L.error_handler = eh
    L.run_callback(lambda: 1 / 0)
    L.run()
    assert eh.calls == [('callback', 'ZeroDivisionError')]


def test_error_handler_plain_callable(L):
    calls = []
    L.error_handler = lambda *a: calls.append(a)
    L.run_callback(lambda: 1 / 0)
    L.run()
    assert len(calls) == 1
    assert len(calls[0]) == 4
    assert calls[0][1] is ZeroDivisionError
    assert isinstance(calls[0][2], ZeroDivisionError)


def test_error_handler_looked_up_each_call(L):
    calls = []

    class EH:
        def handle_error(self, *a):
            calls.append('class')

    eh = EH()
    L.error_handler = eh
    eh.handle_error = lambda *a: calls.append('instance')
    L.run_callback(lambda: 1 / 0)
    L.run()
    assert calls == ['instance']


def test_no_error_handler_prints_and_breaks(L, capfd):
    later = []

    def bad():
        1 / 0

    L.run_callback(bad)
    L.run_callback(later.append, 'later')
    t0 = time.monotonic()
    L.run()
    assert time.monotonic() - t0 < 0.5
    out, err = capfd.readouterr()
    assert 'ZeroDivisionError' in err, err
    assert later == ['later']


def test_no_error_handler_breaks_run(L, capfd):
    # the default handler calls break_(): run() returns although a timer is active
    t = L.timer(5)
    t.start(_noop)
    try:
        L.run_callback(lambda: 1 / 0)
        t0 = time.monotonic()
        L.run()
        assert time.monotonic() - t0 < 0.5
    finally:
        t.stop()
    assert 'ZeroDivisionError' in capfd.readouterr()[1]


def test_default_handle_error_with_str_value(L, capfd):
    L.handle_error('ctx', ValueError, 'a str value', None)
    L.handle_error('ctx', ValueError, None, None)
    err = capfd.readouterr()[1]
    assert 'ValueError' in err
    assert 'a str value' in err
    assert '__suppress_context__' not in err


def test_exc_info_clean_in_callbacks(loop):
    recorded = []
    t = loop.timer(0.001)
    try:
        raise RuntimeError('main context')
    except RuntimeError:
        t.start(lambda: recorded.append(sys.exc_info()))
        loop.run_callback(lambda: recorded.append(sys.exc_info()))
        H.sleep(0.01)
        assert sys.exc_info()[0] is RuntimeError
    t.close()
    assert recorded == [(None, None, None), (None, None, None)]
