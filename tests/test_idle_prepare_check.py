"""idle, prepare and check watchers (gevent's libuv loop raises TypeError
for prepare; gevent_c supports it), with their error behaviour (they stay
active; docs/semantics.md, 'Errors inside the loop')."""
import sys
import time

import pytest
from _util import noop as _noop

import gevent_c.hub as H

KINDS = ['idle', 'prepare', 'check']


@pytest.mark.parametrize('name', KINDS)
def test_check_fires_and_stops(loop, name):
    # check: started with log.append, name -> after sleep(0.01) name in log;
    # after stop() and sleep(0.01), no further entries
    log = []
    w = getattr(loop, name)()
    try:
        w.start(log.append, name)
        H.sleep(0.01)
        assert name in log
        w.stop()
        n = len(log)
        H.sleep(0.01)
        assert len(log) == n
    finally:
        w.close()


@pytest.mark.parametrize('name', KINDS)
def test_persistent_each_iteration(L, name):
    # fires on every iteration until stopped; a 1 ms repeating timer drives
    # iterations (prepare/check alone would let the loop block in poll)
    count = []
    w = getattr(L, name)()
    driver = L.timer(0.001, 0.001)

    def cb():
        count.append(L.iteration)
        if len(count) == 5:
            w.stop()
            driver.stop()

    w.start(cb)
    driver.start(_noop)
    L.run()
    assert len(count) == 5
    assert len(set(count)) == 5, count  # once per iteration, not several times in one
    w.close()
    driver.close()


def test_idle_alone_keeps_run_going(L):
    count = []
    w = L.idle()

    def cb():
        count.append(1)
        if len(count) == 10:
            w.stop()

    w.start(cb)
    L.run()
    assert len(count) == 10


def test_idle_does_not_block_but_timers_still_fire(L):
    # with an idle watcher active the loop does not block; it fires on the
    # iterations before the timer is due, and the timer still fires
    idles = []
    fired = []
    w = L.idle()
    w.start(idles.append, 1)
    t = L.timer(0.02)

    def done():
        fired.append(1)
        w.stop()

    t.start(done)
    t0 = time.monotonic()
    L.run()
    assert fired == [1]
    assert time.monotonic() - t0 >= 0.015
    assert len(idles) > 1, idles
    w.close()


def test_idle_in_hub_does_not_starve_sleep(loop):
    count = []
    w = loop.idle()
    try:
        w.start(count.append, 1)
        t0 = time.monotonic()
        H.sleep(0.02)
        assert time.monotonic() - t0 < 2
        assert len(count) > 1
    finally:
        w.close()


def test_prepare_before_check_each_iteration(L):
    # prepare runs before the poll, check after it: the log alternates
    # prepare, check, prepare, check, ... (gevent 26.9.0 libev: same)
    log = []
    p = L.prepare()
    c = L.check()
    driver = L.timer(0.001, 0.001)
    n = []

    def tick():
        n.append(1)
        if len(n) == 5:
            p.stop()
            c.stop()
            driver.stop()

    p.start(log.append, 'p')
    c.start(log.append, 'c')
    driver.start(tick)
    L.run()
    start = log.index('p')
    seq = log[start:]
    assert len(seq) >= 6, log
    for i, item in enumerate(seq):
        assert item == ('p' if i % 2 == 0 else 'c'), log
    for x in (p, c, driver):
        x.close()


def test_prepare_supported_on_every_loop(L, loop):
    # gevent's libuv loop raises TypeError for prepare()
    for lp in (L, loop):
        w = lp.prepare()
        assert type(w).__name__ == 'prepare'
        w.close()


@pytest.mark.parametrize('name', KINDS)
def test_ref_false_does_not_keep_run(L, name):
    w = getattr(L, name)(ref=False)
    w.start(_noop)
    try:
        t0 = time.monotonic()
        L.run()
        assert time.monotonic() - t0 < 1
    finally:
        w.close()


@pytest.mark.parametrize('name', KINDS)
def test_error_keeps_watcher_active(loop, stream, name):
    # only io watchers are stopped after an error; others stay as they were
    w = getattr(loop, name)()
    try:
        w.start(lambda: 1 / 0)
        H.sleep(0.01)
        assert 'failed with ZeroDivisionError' in stream.getvalue()
        assert ('<%s at 0x' % name) in stream.getvalue(), stream.getvalue()
        assert w.active is True
    finally:
        w.close()


@pytest.mark.parametrize('name', KINDS)
def test_exc_info_clean(loop, name):
    rec = []
    w = getattr(loop, name)()
    try:
        try:
            raise RuntimeError('main')
        except RuntimeError:
            w.start(lambda: (rec.append(sys.exc_info()), w.stop()))
            H.sleep(0.01)
            assert sys.exc_info()[0] is RuntimeError
        assert rec == [(None, None, None)]
    finally:
        w.close()


@pytest.mark.parametrize('name', KINDS)
def test_stop_from_own_callback(loop, name):
    log = []
    w = getattr(loop, name)()

    def cb():
        log.append(1)
        w.stop()

    try:
        w.start(cb)
        H.sleep(0.01)
        H.sleep(0.01)
        assert log == [1]
        assert w.active is False
    finally:
        w.close()


@pytest.mark.parametrize('name', KINDS)
def test_close_from_own_callback(loop, name):
    log = []
    w = getattr(loop, name)()

    def cb():
        log.append(1)
        w.close()

    w.start(cb)
    H.sleep(0.01)
    H.sleep(0.01)
    assert log == [1]
    assert w.active is False
