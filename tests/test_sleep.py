"""sleep() (docs/semantics.md, 'sleep')."""
import re
import threading
import time

import greenlet
import pytest

import gevent_c.hub as H
from _util import last_line, untimed


def _wait_dead(*greenlets, limit=1000):
    for _ in range(limit):
        if all(g.dead for g in greenlets):
            return
        H.sleep(0)
    raise AssertionError('greenlets did not finish')


def test_sleep_returns_none(hub):
    assert H.sleep() is None
    assert H.sleep(0) is None
    assert H.sleep(0.001) is None


def test_sleep0_ordering(hub):
    log = []

    def worker(name):
        log.append(name + '1')
        H.sleep(0)
        log.append(name + '2')

    a = H.spawn_raw(worker, 'a')
    b = H.spawn_raw(worker, 'b')
    _wait_dead(a, b)
    assert log == ['a1', 'b1', 'a2', 'b2']


def test_sleep0_runs_previously_queued_callbacks_fifo(loop):
    log = []
    for i in range(5):
        loop.run_callback(log.append, i)
    H.sleep(0)
    assert log == [0, 1, 2, 3, 4]


def test_sleep_duration(hub):
    t0 = time.monotonic()
    H.sleep(0.05)
    elapsed = time.monotonic() - t0
    assert 0.049 <= elapsed < 1, elapsed


def test_sleep_negative_yields(hub):
    log = []
    H.spawn_raw(log.append, 1)
    t0 = time.monotonic()
    H.sleep(-5)
    assert log == [1]
    assert time.monotonic() - t0 < 0.5


def test_sleep0_ref_ignored(hub):
    log = []
    H.spawn_raw(log.append, 1)
    H.sleep(0, ref=False)
    assert log == [1]


def test_sleep_ref_false_main_loop_exit(check_py):
    out = check_py('''
        import time
        import gevent_c.hub as H
        t0 = time.monotonic()
        try:
            H.sleep(1, ref=False)
        except H.LoopExit as e:
            el = time.monotonic() - t0
            assert el < 0.5, el
            assert e.args[0] == 'This operation would block forever'
            assert e.hub is H.get_hub()
            print('loopexit')
        else:
            raise AssertionError('no LoopExit')
        # the hub is still usable afterwards
        H.sleep(0.001)
    ''', timeout=10)
    assert out.strip() == 'loopexit'


def test_sleep_ref_false_in_greenlet_join_true(hub):
    g = H.spawn_raw(H.sleep, 5, False)
    H.sleep(0)
    try:
        t0 = time.monotonic()
        assert hub.join() is True
        assert time.monotonic() - t0 < 0.5
        assert not g.dead
    finally:
        H.kill(g)
        H.sleep(0)
    assert g.dead


def test_sleep_fairness(loop):
    hits = []
    w = H.Waiter()
    t = loop.timer(0.01)
    t.start(hits.append, 1)

    def spinner():
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            H.sleep(0)
        loop.run_callback(w.switch, list(hits))

    try:
        H.spawn_raw(spinner)
        snapshot = w.get()
    finally:
        t.close()
    assert snapshot, 'the timer never fired while a greenlet looped on sleep(0)'


def test_sleep_type_error(hub):
    with pytest.raises(TypeError):
        H.sleep('x')
    with pytest.raises(TypeError):
        H.sleep(object())
    # still usable
    H.sleep(0)


def test_sleep_in_callback_blocking_switch_out(loop, stream):
    main_log = []
    loop.run_callback(H.sleep, 0.01)
    H.sleep(0.02)
    main_log.append('ok')
    assert main_log == ['ok']
    assert re.match(r'^<callback at 0x[0-9a-f]+ .*> failed with BlockingSwitchOutError$',
                    untimed(last_line(stream))), stream.getvalue()


def test_sleep0_in_callback_blocking_switch_out(loop, stream):
    loop.run_callback(H.sleep, 0)
    H.sleep(0.01)
    assert last_line(stream).endswith('failed with BlockingSwitchOutError'), stream.getvalue()


def test_sleep_calls_switch_out_hook(hub):
    calls = []

    def f():
        greenlet.getcurrent().switch_out = lambda: calls.append(1)
        H.sleep(0)

    g = H.spawn_raw(f)
    _wait_dead(g)
    assert calls == [1]


def test_sleep_timer_released_when_killed(loop):
    H.sleep(0)
    base = loop.activecnt
    g = H.spawn_raw(H.sleep, 10)
    H.sleep(0)
    assert not g.dead
    assert loop.activecnt == base + 1   # the sleep timer is referenced
    H.kill(g)
    H.sleep(0)
    assert g.dead
    assert loop.activecnt == base


def test_sleep_in_thread_creates_hub(hub):
    res = {}

    def target():
        res['before'] = H._get_hub()
        t0 = time.monotonic()
        H.sleep(0.02)
        res['elapsed'] = time.monotonic() - t0
        res['after'] = H._get_hub()

    t = threading.Thread(target=target)
    t.start()
    t.join(10)
    assert res['before'] is None
    assert res['after'] is not None and res['after'] is not hub
    assert 0.019 <= res['elapsed'] < 1


def test_concurrent_sleepers_wake_in_order(hub):
    log = []

    def sleeper(d):
        H.sleep(d)
        log.append(d)

    gs = [H.spawn_raw(sleeper, d) for d in (0.03, 0.01, 0.02)]
    H.sleep(0.1)
    assert log == [0.01, 0.02, 0.03]
    assert all(g.dead for g in gs)


def test_sleep_releases_gil_while_polling(hub):
    ticks = []

    def counter():
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            ticks.append(1)
            time.sleep(0.005)

    t = threading.Thread(target=counter)
    t.start()
    H.sleep(0.3)
    n_during = len(ticks)
    t.join(10)
    assert n_during >= 10, n_during


def test_threads_sleep_concurrently(hub):
    def target():
        H.sleep(0.2)

    threads = [threading.Thread(target=target) for _ in range(3)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    H.sleep(0.2)
    for t in threads:
        t.join(10)
    assert time.monotonic() - t0 < 0.5


def test_switch_out_raising_propagates(hub):
    got = []

    def f():
        def bad():
            raise ValueError('no switching')
        greenlet.getcurrent().switch_out = bad
        try:
            H.sleep(0.01)
        except ValueError as e:
            got.append(str(e))

    g = H.spawn_raw(f)
    H.sleep(0.03)
    assert got == ['no switching']
    assert g.dead


def test_sleep_woken_by_unexpected_switch_raises(hub):
    # like hub.wait(): a sleep(t) resumed by anything but its timer fails
    seen = []

    def sleeper():
        try:
            H.sleep(5)
        except H.InvalidSwitchError as e:
            seen.append(str(e))

    g = H.spawn_raw(sleeper)
    H.sleep(0)
    before = hub.loop.activecnt
    hub.loop.run_callback(g.switch, 'boo')
    H.sleep(0.01)
    assert seen and "got 'boo'" in seen[0]
    assert g.dead
    assert hub.loop.activecnt == before - 1  # its timer is gone


def test_killed_sleeper_leaves_no_timer(hub):
    g = H.spawn_raw(H.sleep, 5)
    H.sleep(0)
    before = hub.loop.activecnt
    H.kill(g)
    H.sleep(0)
    assert g.dead
    assert hub.loop.activecnt == before - 1


@pytest.mark.parametrize('seconds', [0.0003, 0.001, 0.0047, 0.02, 0.0535])
def test_sleep_never_early(hub, seconds):
    """A sleep is never shorter than asked, measured with the monotonic
    clock the loop's deadlines use (below and above the 50 ms the loop
    waits for with ns precision from the start)."""
    slept = []
    for _ in range(5):
        t0 = time.monotonic()
        H.sleep(seconds)
        slept.append(time.monotonic() - t0)
    assert min(slept) >= seconds, slept
    assert max(slept) < seconds + 1, slept
