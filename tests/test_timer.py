"""The common watcher contract (with timers) and timer watchers
(docs/semantics.md, 'Watchers', 'timer')."""
import gc
import math
import re
import time
import warnings
import weakref

import pytest
from _util import noop as _noop

import gevent_c.core as core
import gevent_c.hub as H
from _util import last_line, untimed


# ---- the common contract


def test_fresh_timer_attributes(loop):
    t = loop.timer(1)
    try:
        assert t.active is False
        assert t.pending is False
        assert t.callback is None
        assert t.args is None
        assert t.ref is True
        assert t.priority == 0
        assert t.loop is loop
    finally:
        t.close()


def test_start_sets_state(loop):
    t = loop.timer(1)
    f = lambda *a: None  # noqa: E731
    try:
        assert t.start(f, 1, 2) is None
        assert t.active is True
        assert t.args == (1, 2)
        assert t.callback is f
    finally:
        t.close()


def test_priority_read_only_while_active(loop):
    t = loop.timer(1)
    try:
        t.start(_noop)
        with pytest.raises(AttributeError) as ei:
            t.priority = 1
        assert 'Cannot set priority of an active watcher' in str(ei.value)
        assert t.priority == 0
    finally:
        t.close()


def test_priority_settable_while_inactive(loop):
    t = loop.timer(1)
    t.priority = 1
    assert t.priority == 1
    t.priority = -2
    assert t.priority == -2
    t.close()


def test_priority_clamped_or_rejected(loop):
    t = loop.timer(1)
    try:
        t.priority = 100
    except ValueError:
        pass
    assert -2 <= t.priority <= 2
    t.close()


def test_priority_and_ref_constructor_args(loop):
    t = loop.timer(1, ref=False, priority=1)
    assert t.ref is False
    assert t.priority == 1
    t.close()


def test_args_setter(loop):
    t = loop.timer(1)
    try:
        t.start(_noop)
        t.args = (3,)
        assert t.args == (3,)
        with pytest.raises(TypeError):
            t.args = 5
        assert t.args == (3,)
        t.args = None
        assert t.args is None
    finally:
        t.close()


def test_callback_setter(loop):
    t = loop.timer(1)
    try:
        with pytest.raises(TypeError) as ei:
            t.callback = 5
        assert 'Expected callable' in str(ei.value)
        t.callback = _noop
        assert t.callback is _noop
        t.callback = None
        assert t.callback is None
    finally:
        t.close()


def test_callback_setter_changes_what_fires(loop):
    log = []
    t = loop.timer(0.005)
    try:
        t.start(log.append, 'x')
        t.callback = lambda *a: log.append(('new',) + a)
        H.sleep(0.03)
        assert log == [('new', 'x')]
    finally:
        t.close()


def test_stop_twice(loop):
    t = loop.timer(1)
    t.start(_noop, 1)
    assert t.stop() is None
    assert t.stop() is None
    assert t.active is False
    assert t.callback is None
    assert t.args is None
    t.close()


def test_close_twice_then_start(loop):
    t = loop.timer(1)
    t.start(_noop)
    assert t.close() is None
    assert t.close() is None
    assert t.active is False
    assert t.callback is None
    assert t.loop is None
    with pytest.raises(ValueError) as ei:
        t.start(_noop)
    assert str(ei.value) == 'operation on closed watcher'
    with pytest.raises(ValueError):
        t.again(_noop)
    t.stop()  # does nothing


@pytest.mark.parametrize('bad', [None, 5, 'str'])
def test_start_non_callable(loop, bad):
    t = loop.timer(1)
    try:
        with pytest.raises(TypeError) as ei:
            t.start(bad)
        assert 'Expected callable' in str(ei.value)
        assert t.active is False
    finally:
        t.close()


def test_active_watcher_kept_alive_without_reference(loop):
    hits = []
    loop.timer(0.01).start(hits.append, 1)
    gc.collect()
    H.sleep(0.03)
    assert hits == [1]


def test_stop_releases_callback(loop):
    class CB:
        def __call__(self, *a):
            pass

    cb = CB()
    ref = weakref.ref(cb)
    t = loop.timer(1)
    t.start(cb)
    del cb
    gc.collect()
    assert ref() is not None  # held by the active watcher
    t.stop()
    del t
    gc.collect()
    assert ref() is None


def test_one_shot_completion_releases_watcher(loop):
    class CB:
        def __call__(self, *a):
            pass

    cb = CB()
    cb_ref = weakref.ref(cb)
    t = loop.timer(0.001)
    t.start(cb)
    del cb, t
    H.sleep(0.02)
    gc.collect()
    assert cb_ref() is None  # the watcher (and so its callback) was released


def test_context_manager(loop):
    log = []
    with loop.timer(0.001) as t:
        t.start(log.append, 'ctx')
        H.sleep(0.01)
    assert 'ctx' in log
    assert t.active is False
    try:
        with pytest.raises(ValueError):
            t.start(_noop)
    finally:
        t.stop()


def test_context_manager_returns_watcher(loop):
    t = loop.timer(1)
    with t as t2:
        assert t2 is t


def test_context_manager_does_not_suppress(loop):
    with pytest.raises(KeyError):
        with loop.timer(1) as t:
            t.start(_noop)
            raise KeyError('x')
    assert t.active is False


def test_start_while_active_replaces(loop):
    log = []
    t = loop.timer(0.01)
    try:
        t.start(log.append, 'first')
        t.start(log.append, 'second')
        assert t.active
        H.sleep(0.03)
        assert log == ['second']
    finally:
        t.close()


def test_destroyed_loop_makes_watcher_inert():
    lp = core.loop(default=False)
    t = lp.timer(1)
    lp.destroy()
    with pytest.raises(ValueError):
        t.start(_noop)
    t.stop()
    t.close()
    t.close()


def test_destroyed_loop_with_active_watcher():
    lp = core.loop(default=False)
    t = lp.timer(1)
    t.start(_noop)
    lp.destroy()
    with pytest.raises(ValueError):
        t.start(_noop)
    t.stop()
    t.close()


def test_ref_false_does_not_keep_run(L):
    t = L.timer(5)
    t.start(_noop)
    t.ref = False
    assert t.ref is False
    try:
        t0 = time.monotonic()
        L.run()
        assert time.monotonic() - t0 < 0.5
    finally:
        t.stop()


def test_ref_flip_while_active(L):
    t = L.timer(5)
    t.start(_noop)
    assert L.activecnt == 1
    t.ref = False
    assert L.activecnt == 0
    t.ref = True
    assert L.activecnt == 1
    t.stop()
    assert L.activecnt == 0


def test_repr(loop):
    t = loop.timer(1)
    try:
        r = repr(t)
        assert r.startswith('<timer at 0x'), r
        assert not re.search(r'\bactive\b', r), r
        t.start(_noop)
        r = repr(t)
        assert re.search(r'\bactive\b', r), r
        assert 'callback=' in r, r
    finally:
        t.close()


# ---- errors from timer callbacks


def test_timer_error_context(loop, stream):
    def bad():
        1 / 0

    t = loop.timer(0.001)
    t.start(bad)
    H.sleep(0.02)
    assert re.match(r'^<timer at 0x[0-9a-f]+.*> failed with ZeroDivisionError$',
                    untimed(last_line(stream))), stream.getvalue()
    assert t.active is False


def test_repeating_timer_error_keeps_firing(loop, stream):
    def bad():
        1 / 0

    t = loop.timer(0.001, 0.001)
    try:
        t.start(bad)
        H.sleep(0.02)
        assert stream.getvalue().count('failed with ZeroDivisionError') > 2, stream.getvalue()
        assert t.active is True
    finally:
        t.close()


# ---- timer specifics


def test_negative_repeat(loop):
    with pytest.raises(ValueError) as ei:
        loop.timer(1, -1)
    assert 'repeat must be positive or zero' in str(ei.value)


@pytest.mark.parametrize('args', [('x',), (1, 'x'), (None,)])
def test_non_number(loop, args):
    with pytest.raises(TypeError):
        loop.timer(*args)


@pytest.mark.parametrize('args', [(math.nan,), (1, math.nan)])
def test_nan_rejected(loop, args):
    with pytest.raises(ValueError):
        loop.timer(*args)


def test_int_and_float_accepted(loop):
    loop.timer(1).close()
    loop.timer(1.5, 2).close()


def test_negative_after_fires(loop):
    log = []
    t = loop.timer(-1)
    t.start(log.append, 'neg')
    H.sleep(0.01)
    assert log == ['neg']


def test_sub_millisecond_after_no_warning(loop):
    log = []
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        t = loop.timer(0.0001)
        t.start(log.append, 'tiny')
    H.sleep(0.01)
    assert log == ['tiny']


def test_one_shot_fires_once(loop):
    log = []
    t = loop.timer(0.005)
    t.start(log.append, 1)
    H.sleep(0.05)
    assert log == [1]
    assert t.active is False


def test_repeat(loop):
    log = []
    t = loop.timer(0.01, 0.01)
    t.start(log.append, 1)
    H.sleep(0.055)
    t.stop()
    assert 3 <= len(log) <= 6, log


def _elapsed_waiting_on_timer(loop, after, busy=0.0):
    """Seconds from start() until a timer of `after` s, waited on with a
    Waiter, fires; `busy` s of blocking work in main first (no yield)."""
    H.sleep(0.001)
    time.sleep(busy)
    w = H.Waiter()
    t = loop.timer(after)
    t0 = time.monotonic()
    t.start(w.switch, 'fired')
    try:
        assert w.get() == 'fired'
    finally:
        t.close()
    return time.monotonic() - t0


def test_timer_not_early(loop):
    el = _elapsed_waiting_on_timer(loop, 0.05)
    assert 0.049 <= el < 1, el


def test_timer_not_early_after_busy_main(loop):
    # the loop's cached now must not make a new timer fire early after
    # main was busy without yielding.
    el = _elapsed_waiting_on_timer(loop, 0.1, busy=0.3)
    assert 0.098 <= el < 1, el


def test_hub_wait_timer_not_early_after_busy_main(loop, hub):
    H.sleep(0.001)
    time.sleep(0.3)
    t = loop.timer(0.1)
    t0 = time.monotonic()
    try:
        hub.wait(t)
    finally:
        t.close()
    el = time.monotonic() - t0
    assert 0.098 <= el < 1, el


def test_sleep_not_early_after_busy_main(hub):
    H.sleep(0.001)
    time.sleep(0.3)
    t0 = time.monotonic()
    H.sleep(0.1)
    el = time.monotonic() - t0
    assert 0.098 <= el < 1, el


def test_start_update_keyword(loop):
    log = []
    t = loop.timer(0.005)
    t.start(log.append, 'u', update=False)
    assert t.args == ('u',)
    H.sleep(0.03)
    assert log == ['u']
    t.start(log.append, 'v', update=True)
    H.sleep(0.03)
    assert log == ['u', 'v']
    t.close()


def test_again_inactive_behaves_like_start(loop):
    log = []
    t = loop.timer(0.01)
    try:
        t.again(log.append, 'x')
        assert t.active
        assert t.args == ('x',)
        H.sleep(0.05)
        assert log == ['x']
    finally:
        t.close()


def test_again_head(L):
    calls = []

    def f(x):
        calls.append(x)
        x.stop()

    t = L.timer(0.001, repeat=0.01)
    t.again(f, t)
    assert t.args == (t,)
    t0 = time.monotonic()
    L.run()
    assert calls == [t]
    assert time.monotonic() - t0 < 1
    t.close()


def test_again_active_no_repeat_stops(loop):
    log = []
    t = loop.timer(0.05)
    try:
        t.start(log.append, 'a')
        H.sleep(0.02)
        t.again(log.append, 'b')
        H.sleep(0.1)
        assert log == []
        assert t.active is False
    finally:
        t.close()


def test_again_active_repeat_restarts_countdown(loop):
    log = []
    t = loop.timer(0.2, 0.2)
    try:
        t.start(log.append, 'a')
        H.sleep(0.1)
        t0 = time.monotonic()
        t.again(log.append, 'b')
        assert t.active
        H.sleep(0.15)  # the original deadline (0.2 after start) has passed
        assert log == []
        H.sleep(0.15)
        assert log and log[0] == 'b'
        assert time.monotonic() - t0 >= 0.199
    finally:
        t.close()


# ---- callbacks that manipulate watchers


def test_restart_one_shot_from_its_callback(loop):
    log = []
    t = loop.timer(0.001)

    def cb():
        log.append(1)
        if len(log) < 3:
            t.start(cb)

    try:
        t.start(cb)
        H.sleep(0.05)
        assert log == [1, 1, 1]
        assert t.active is False
    finally:
        t.close()


def test_close_from_own_callback(loop):
    log = []
    t = loop.timer(0.001, 0.001)

    def cb():
        log.append(1)
        t.close()

    t.start(cb)
    H.sleep(0.02)
    assert log == [1]
    assert t.active is False
    with pytest.raises(ValueError):
        t.start(cb)


def test_stopped_watcher_does_not_fire_in_same_iteration(loop):
    # Two timers due at the same time: whichever runs first stops the other.
    # A stopped watcher must not fire, even if its event was already received.
    log = []
    a = loop.timer(0.01)
    b = loop.timer(0.01)

    def fire(me, other):
        log.append(me)
        other.stop()

    try:
        a.start(fire, 'a', b)
        b.start(fire, 'b', a)
        H.sleep(0.05)
        assert len(log) == 1, log
    finally:
        a.close()
        b.close()


def test_closed_watcher_does_not_fire_in_same_iteration(loop):
    log = []
    a = loop.timer(0.01)
    b = loop.timer(0.01)

    def fire(me, other):
        log.append(me)
        other.close()

    a.start(fire, 'a', b)
    b.start(fire, 'b', a)
    H.sleep(0.05)
    assert len(log) == 1, log
    a.close()
    b.close()


def test_sleep_ref_false_with_other_work_returns_normally(hub):
    g = H.spawn_raw(H.sleep, 0.1)
    t0 = time.monotonic()
    H.sleep(0.01, ref=False)  # the other sleeper keeps the loop alive
    assert 0.009 <= time.monotonic() - t0 < 0.09
    H.kill(g)
    H.sleep(0)


# ---- GC support


def test_inactive_timer_callback_cycle_collected(loop):
    class Holder:
        def cb(self):
            pass

    h = Holder()
    h.t = loop.timer(1)
    h.t.callback = h.cb      # cycle: h -> t -> bound method -> h
    h.t.args = (h,)
    r = weakref.ref(h)
    del h
    gc.collect()
    assert r() is None


def test_stopped_timer_cycle_collected(loop):
    class Holder:
        pass

    h = Holder()
    h.t = loop.timer(1)
    h.t.start(_noop, h)
    h.t.stop()
    h.t.args = (h,)
    r = weakref.ref(h)
    del h
    gc.collect()
    assert r() is None


def test_loop_error_handler_cycle_collected():
    class Holder:
        def handle_error(self, *a):
            pass

    h = Holder()
    h.loop = core.loop(default=False)
    h.loop.error_handler = h
    r = weakref.ref(h)
    del h
    gc.collect()
    assert r() is None


# ---- precision: a fraction of a millisecond late, never early


@pytest.mark.parametrize('after', [0.0002, 0.001, 0.0031, 0.0125, 0.049, 0.0515, 0.06])
def test_one_shot_never_early_at_any_delay(L, after):
    """Below and above the span the loop waits for with ns precision from
    the start (50 ms: a farther deadline is brought close by a libuv timer
    armed early)."""
    fired = []
    for _ in range(5):
        t = L.timer(after)
        t0 = time.perf_counter()
        t.start(lambda: fired.append(time.perf_counter() - t0))
        n = len(fired)
        while len(fired) == n:
            L.run(once=True)
        t.close()
    assert min(fired) >= after, (after, fired)


def test_run_once_waits_for_the_deadline_itself(L):
    t = L.timer(0.0125)
    fired = []
    t0 = time.perf_counter()
    t.start(lambda: fired.append(time.perf_counter() - t0))
    try:
        L.run(once=True)        # one blocking pass ends with the timer fired
        assert len(fired) == 1 and fired[0] >= 0.0125, fired
    finally:
        t.close()


def test_precise_timer_stop_restart_close_and_feed(L):
    log = []
    t = L.timer(0.002)          # within the span: waits on the loop's precise heap
    t.start(log.append, 'a')
    t.stop()
    t.start(log.append, 'b')    # restart replaces it
    t.start(log.append, 'c')
    u = L.timer(0.001)
    u.start(log.append, 'u')
    u.close()                   # closed while on the heap
    v = L.timer(0.0015)
    v.start(log.append, 'v')
    v.feed(0, log.append, 'fed')  # fed: fires the feed, stays armed
    time.sleep(0.005)
    while t.active or v.active:
        L.run(once=True)
    assert log.count('c') == 1 and 'a' not in log and 'b' not in log and 'u' not in log, log
    # feed replaced the callback: the fed event, then the timer itself
    assert log.count('fed') == 2 and 'v' not in log and not v.active, log
    assert t.at is None and not t.active


@pytest.mark.parametrize('after', [0.0021, 0.0123, 0.25])
def test_one_shot_deadline_is_counted_in_nanoseconds(L, after):
    """`at` is the deadline the loop waits for: start()'s clock (the
    monotonic one) plus `after`, not libuv's whole milliseconds of a cached
    clock, rounded up (which made every sleep about 1 ms late)."""
    t = L.timer(after)
    try:
        for _ in range(3):
            before = time.monotonic()
            t.start(_noop)
            done = time.monotonic()
            assert before + after <= t.at + 1e-9, (before, t.at)
            assert t.at <= done + after + 1e-6, (done, t.at)
            t.stop()
            time.sleep(0.0003)
    finally:
        t.close()


def test_destroy_loop_with_timers_on_the_precise_heap():
    import subprocess
    import sys
    code = '''if 1:
        import gc, gevent_c.core as core
        for _ in range(50):
            L = core.loop(default=False)
            ts = [L.timer(0.001 * (i % 4) + 0.0005 + 0.03 * (i % 3)) for i in range(20)]
            for t in ts:
                t.start(print)
            L.run(nowait=True)
            L.destroy()
            assert not any(t.active for t in ts)
            del ts, L
            gc.collect()
        print('ok')
    '''
    p = subprocess.run([sys.executable, '-X', 'dev', '-c', code], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stdout.split()[-1] == 'ok', p.stderr[-2000:]


def _check_heap_order(L, seed, n, delay, stop, restart):
    """n timers of delay(rnd) seconds; `stop` of them stopped, `restart` of
    the still active ones restarted in place (start() on an active timer
    moves it within the heap); the rest fire once each, in deadline order,
    never early."""
    import random
    rnd = random.Random(seed)
    fired = []
    ts = []
    for i in range(n):
        t = L.timer(delay(rnd))
        t.start(lambda i=i: fired.append((i, time.monotonic())))
        ts.append(t)
    for t in rnd.sample(ts, stop):
        t.stop()
    for t in rnd.sample([t for t in ts if t.active], restart):
        i = ts.index(t)
        t.start(lambda i=i: fired.append((i, time.monotonic())))
    live = {i: t.at for i, t in enumerate(ts) if t.active}
    try:
        while any(t.active for t in ts):
            L.run(once=True)
        assert sorted(i for i, _ in fired) == sorted(live), fired
        order = [i for i, _ in fired]
        assert order == sorted(order, key=lambda i: live[i]), order
        assert all(when >= live[i] - 1e-6 for i, when in fired)
    finally:
        for t in ts:
            t.close()


def test_many_precise_timers_fire_in_deadline_order(L):
    """The heap: 200 timers, a third stopped or restarted at random; the rest
    fire once each, in deadline order, none early."""
    _check_heap_order(L, 5, 200, lambda rnd: rnd.random() * 0.02, stop=40, restart=30)


def test_far_and_near_timers_share_the_heap_in_deadline_order(L):
    """Deadlines on both sides of the 50 ms span: all on the loop's heap (a far
    first deadline is brought close by the loop's one libuv timer); stopped,
    restarted in place (start() on an active timer) or left alone, each
    fires once, in deadline order, never early."""
    _check_heap_order(L, 11, 60, lambda rnd: 0.001 + rnd.random() * 0.15, stop=15, restart=15)


def test_restart_in_place_moves_the_deadline(L):
    t = L.timer(0.08)
    fired = []
    t.start(lambda: fired.append(time.monotonic()))
    first = t.at
    time.sleep(0.01)
    t.start(lambda: fired.append(time.monotonic()))    # active: a restart
    try:
        assert t.at >= first + 0.009, (first, t.at)
        while t.active:
            L.run(once=True)
        assert len(fired) == 1 and fired[0] >= first + 0.009, fired
    finally:
        t.close()


def test_stopped_far_timer_does_not_keep_run_going(L):
    """The libuv timer that brings a far deadline close does not keep the
    loop alive: once the far timer is stopped, run() returns."""
    far = L.timer(5.0)
    near = L.timer(0.06)
    far.start(_noop)
    near.start(far.stop)       # `far` stopped when `near` fires
    t0 = time.monotonic()
    try:
        L.run()
        assert not far.active and time.monotonic() - t0 < 2.0
        # the only deadline far: the blocking pass arms the libuv timer for
        # it; another thread wakes the loop, which stops `far`
        import threading
        far.start(_noop)
        a = L.async_()
        a.start(lambda: (far.stop(), a.stop()))
        th = threading.Timer(0.02, a.send)
        th.start()
        t0 = time.monotonic()
        L.run()
        th.join()
        assert not far.active and time.monotonic() - t0 < 2.0
        a.close()
    finally:
        far.close()
        near.close()
