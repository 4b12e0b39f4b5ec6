"""Loop names gevent has: watcher.feed(), loop.sig_pending, loop.backend_int,
gevent_c.core.BACKEND_*, loop.debug(); with gevent's semantics (libev's
where gevent's libuv loop lacks them), compared with gevent where the compat
venv exists."""
import json
import os
import signal
import socket

import pytest

import _util
import gevent_c.core as core
import gevent_c.hub as H


def _watchers(loop, rfd):
    return {
        'timer': loop.timer(30), 'io': loop.io(rfd, 1), 'idle': loop.idle(),
        'prepare': loop.prepare(), 'check': loop.check(), 'fork': loop.fork(),
        'async_': loop.async_(), 'signal': loop.signal(signal.SIGUSR2),
        'child': loop.child(os.getpid()), 'stat': loop.stat('/nonexistent-path'),
    }


@pytest.mark.parametrize('active', [False, True])
def test_feed_every_watcher_type(hub, active):
    loop = hub.loop
    a, b = socket.socketpair()
    old = signal.signal(signal.SIGUSR2, lambda *a: None)
    try:
        ws = _watchers(loop, a.fileno())
        got = []
        for name, w in ws.items():
            if active:
                w.start(got.append, 'started ' + name)
            w.feed(core.READ, got.append, name)
            # async_.pending is libev's ev_async_pending (sent, not fed)
            assert w.pending == (name != 'async_'), name
            assert w.active == active
        H.sleep(0.01)
        # every fed callback ran (an active idle/prepare/check goes on
        # running the fed callback, which replaced its own)
        assert set(got) == set(ws), got
        if not active:
            assert sorted(got) == sorted(ws), got
        for name, w in ws.items():
            assert not w.pending or w.active, name
            assert w.active == active, name     # feeding never stops a watcher
            assert w.callback == got.append
            w.close()
    finally:
        signal.signal(signal.SIGUSR2, old)
        a.close()
        b.close()


@pytest.fixture
def loop():
    lp = core.loop(default=False)
    yield lp
    lp.destroy()


def test_feed_active_one_shot_timer_still_fires(loop):
    t = loop.timer(0.02)
    got = []
    t.start(got.append, 'due')
    t.feed(0, got.append, 'fed')
    loop.run(nowait=True)
    assert got == ['fed'] and t.active
    while len(got) < 2:
        loop.run(once=True)
    assert got == ['fed', 'fed'] and not t.active   # feed replaced the callback
    t.close()


def test_feed_io_passes_revents(loop):
    a, b = socket.socketpair()
    try:
        w = loop.io(a.fileno(), core.READ)
        got = []
        w.feed(core.WRITE, lambda *args: got.append(args), core.EVENTS, 'x')
        loop.run(once=True)
        assert got == [(core.WRITE, 'x')]
        w.close()
    finally:
        a.close()
        b.close()


def test_feed_bad_input(loop):
    t = loop.timer(1)
    with pytest.raises(TypeError):
        t.feed(0)
    with pytest.raises(TypeError):
        t.feed(0, 'not callable')
    with pytest.raises(TypeError):
        t.feed('x', print)
    with pytest.raises(OverflowError):
        t.feed(1 << 70, print)
    t.close()
    with pytest.raises(ValueError):
        t.feed(0, print)
    assert not t.pending


def test_feed_keeps_an_unreferenced_watcher_alive(loop):
    got = []
    loop.timer(5).feed(0, got.append, 'fed')   # no reference kept
    import gc
    gc.collect()
    loop.run(once=True)
    assert got == ['fed']


def test_backend_int_and_constants():
    lp = core.loop(default=False)
    try:
        assert lp.backend == 'epoll'
        assert lp.backend_int == core.BACKEND_EPOLL == 4
        assert (core.BACKEND_SELECT, core.BACKEND_POLL, core.BACKEND_KQUEUE,
                core.BACKEND_DEVPOLL, core.BACKEND_PORT, core.BACKEND_LINUXAIO,
                core.BACKEND_IOURING) == (1, 2, 8, 16, 32, 64, 128)
    finally:
        lp.destroy()
    with pytest.raises(ValueError):
        lp.backend_int
    with pytest.raises(ValueError):
        lp.sig_pending


def test_sig_pending(check_py):
    out = check_py('''
        import os, signal
        import gevent_c.hub as H
        loop = H.get_hub().loop
        signal.signal(signal.SIGUSR2, lambda *a: None)
        w = loop.signal(signal.SIGUSR2)
        got = []
        w.start(got.append, 1)
        r = [loop.sig_pending]
        os.kill(os.getpid(), signal.SIGUSR2)
        r.append(loop.sig_pending)
        loop.run(once=True)
        r.append(loop.sig_pending)
        print(r, got)
    ''')
    assert out.strip() == '[0, 1, 0] [1]'


def test_debug_lists_handles():
    lp = core.loop(default=False)
    try:
        a, b = socket.socketpair()
        w = lp.io(a.fileno(), 1)
        w.start(print)
        t = lp.timer(5)
        t.start(print)
        lp.run(nowait=True)                       # arms the fd's native poll
        states = lp.debug()
        by_owner = {}
        for h in states:
            assert isinstance(h.handle, int) and isinstance(h.type, bytes)
            by_owner.setdefault(h.type, []).append(h)
        assert any(h.watcher is t and h.active for h in by_owner[b'timer'])
        assert any(h.watcher == (w,) and h.active for h in by_owner[b'poll'])
        assert all(h.watcher is lp for h in by_owner[b'prepare'])
        w.close()
        t.close()
        a.close()
        b.close()
    finally:
        lp.destroy()
    assert lp.debug() == ['Loop has been destroyed']


def test_side_by_side_with_gevent():
    """What gevent's own loops report for the same names."""
    py = _util.compat_python()
    if py is None:
        pytest.skip('compat venv absent (make compat-venv)')
    code = '''
        import json, sys
        import gevent.core as core
        from gevent import get_hub
        loop = get_hub().loop
        t = loop.timer(30)
        got = []
        try:
            t.feed(0, got.append, 'fed')
            import gevent
            gevent.sleep(0.01)
            feed = got
        except Exception as e:
            feed = type(e).__name__
        print(json.dumps({
            'backend': loop.backend, 'backend_int': loop.backend_int,
            'BACKEND_EPOLL': getattr(core, 'BACKEND_EPOLL', None),
            'sig_pending': getattr(loop, 'sig_pending', 'absent'),
            'debug': type(getattr(loop, 'debug', lambda: 'absent')()).__name__,
            'feed': feed,
        }))
    '''
    res = {}
    for name, env in [('ours', {'GEVENT_LOOP': 'gevent_c.core.loop'}),
                      ('libev', {'GEVENT_LOOP': 'libev-cext'}),
                      ('libuv', {'GEVENT_LOOP': 'libuv'})]:
        p = _util.run_gevent(code, env=env)
        assert p.returncode == 0, (name, p.stderr)
        res[name] = json.loads(p.stdout.strip().splitlines()[-1])
    # as libev: epoll numbered 4, sig_pending 0, feed runs the callback
    assert res['libev']['backend_int'] == res['ours']['backend_int'] == 4
    assert res['libev']['BACKEND_EPOLL'] == res['ours']['BACKEND_EPOLL'] == 4
    assert res['libev']['sig_pending'] == res['ours']['sig_pending'] == 0
    assert res['libev']['feed'] == res['ours']['feed'] == ['fed']
    # as gevent's libuv loop (libev has no debug()): a list of handle states
    assert res['libuv']['debug'] == res['ours']['debug'] == 'list'
    # gevent's libuv loop lacks feed() and sig_pending; ours has libev's
    assert res['libuv']['feed'] == 'Exception' and res['libuv']['sig_pending'] == 'absent'
