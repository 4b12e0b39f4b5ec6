"""The order of the events one loop pass dispatches, as libev's: higher
priority first; within a priority, io (and every other watcher) before
timers that expired in the same pass (docs/design.md, "Dispatch order")."""
import os
import socket
import time

import pytest

import _util
import gevent_c.hub as H


class Boom(Exception):
    pass


@pytest.fixture
def loop():
    # a loop of its own: the hub's loop may be running (inside its greenlet)
    import gevent_c.core as core
    lp = core.loop(default=False)
    yield lp
    lp.destroy()


def _spin(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def _pass_with(loop, order, *starts):
    """Start every (watcher, label), make them all due in one pass (busy
    past the timers' deadline, with the io ready), then run that pass."""
    try:
        for w, label in starts:
            w.start(order.append, label)
        _spin(0.02)
        loop.run(nowait=True)
    finally:
        for w, _ in starts:
            w.close()


def test_io_before_timer_expired_in_the_same_pass(loop):
    a, b = socket.socketpair()
    try:
        b.send(b'x')
        order = []
        _pass_with(loop, order, (loop.timer(0.005), 'timer'), (loop.io(a.fileno(), 1), 'io'))
        assert order == ['io', 'timer']
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize('pri_timer,pri_io,expected', [
    (1, 0, ['timer', 'io']),     # priority first: a higher-priority timer wins
    (0, 0, ['io', 'timer']),
    (-1, 0, ['io', 'timer']),
    (0, 2, ['io', 'timer']),
    (-2, -2, ['io', 'timer']),
    (2, -2, ['timer', 'io']),
])
def test_priority_between_io_and_timer(loop, pri_timer, pri_io, expected):
    a, b = socket.socketpair()
    try:
        b.send(b'x')
        order = []
        t = loop.timer(0.005)
        t.priority = pri_timer
        io = loop.io(a.fileno(), 1)
        io.priority = pri_io
        _pass_with(loop, order, (t, 'timer'), (io, 'io'))
        assert order == expected
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize('pris', [[-2, -1, 0, 1, 2], [2, 1, 0, -1, -2], [0, 2, -2, 1, -1]])
def test_priorities_among_io_watchers(loop, pris):
    socks = [socket.socketpair() for _ in range(5)]
    try:
        starts = []
        # started in the order given; all ready in one pass
        for (a, b), pri in zip(socks, pris):
            b.send(b'x')
            w = loop.io(a.fileno(), 1)
            w.priority = pri
            starts.append((w, pri))
        order = []
        _pass_with(loop, order, *starts)
        assert order == [2, 1, 0, -1, -2]
    finally:
        for a, b in socks:
            a.close()
            b.close()


def test_timers_due_together_by_priority_then_start_order(loop):
    order = []
    starts = []
    for label, pri in [('a0', 0), ('b-1', -1), ('c2', 2), ('d0', 0), ('e2', 2)]:
        t = loop.timer(0.001 * (len(starts) + 1))
        t.priority = pri
        starts.append((t, label))
    _pass_with(loop, order, *starts)
    assert order == ['c2', 'e2', 'a0', 'd0', 'b-1']


def test_timer_still_never_fires_early(loop):
    t = loop.timer(0.03)
    fired = []
    t0 = time.monotonic()
    t.start(lambda: fired.append(time.monotonic() - t0))
    while not fired:
        loop.run(once=True)
    assert fired[0] >= 0.03


def test_read_beats_timeout_expired_while_busy_hub_api(hub):
    """A greenlet waits on recv under a 10 ms timeout; the data arrives in
    time, but the process is busy past the deadline before it returns to
    the loop: the read wins every time (as on libev)."""
    loop = hub.loop
    a, b = socket.socketpair()
    a.setblocking(False)
    wins = []

    def reader():
        w = loop.io(a.fileno(), 1)
        t = loop.timer(0.01)
        t.start(H.getcurrent().throw, Boom)
        try:
            hub.wait(w)
            wins.append('read')
        except Boom:
            wins.append('timeout')
        finally:
            t.close()
            w.close()
        a.recv(1)

    try:
        for _ in range(50):
            g = H.spawn_raw(reader)
            H.sleep(0)                  # the reader starts waiting
            b.send(b'x')
            _spin(0.02)
            while not g.dead:
                H.sleep(0.001)
        assert wins == ['read'] * 50
    finally:
        a.close()
        b.close()


def test_read_beats_timeout_expired_while_busy_gevent():
    if _util.compat_python() is None:
        pytest.skip('compat venv absent (make compat-venv)')
    p = _util.run_gevent('''
        import time
        import gevent, gevent.socket
        from gevent import Timeout
        assert type(gevent.get_hub().loop).__module__ == 'gevent_c.core'
        a, b = gevent.socket.socketpair()
        wins = []
        def reader():
            try:
                with Timeout(0.01):
                    a.recv(1)
                wins.append('read')
            except Timeout:
                wins.append('timeout')
                a.recv(1)
        for i in range(50):
            g = gevent.spawn(reader)
            gevent.sleep(0)             # the reader starts waiting
            b.send(b'x')
            deadline = time.monotonic() + 0.02
            while time.monotonic() < deadline:
                pass
            g.join()
        print(wins.count('read'), len(wins))
    ''')
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ['50', '50']


# ---- a pass's timers and the callbacks its io queued


def _spawn_then_timer_same_pass(loop, spawn, sleep, busy_in_io):
    """An io watcher (a listener, say) whose callback spawns three
    greenlets, and a priority-0 timer; both due in one pass.  Returns
    the order of: the io callback, the greenlets' starts, the timer's
    callback, and how many spawned greenlets had not started when the
    timer fired."""
    a, b = socket.socketpair()
    order = []
    started = []
    spawned = []

    def handler(i):
        started.append(i)
        order.append('h%d' % i)

    def on_io():
        io.stop()
        a.recv(1)
        order.append('io')
        for i in range(3):
            spawned.append(i)
            spawn(handler, i)
        if busy_in_io:
            _spin(busy_in_io)   # the timer becomes due while this runs

    def on_timer():
        order.append('timer:%d' % (len(spawned) - len(started)))

    io = loop.io(a.fileno(), 1)
    t = loop.timer(0.005)
    try:
        io.start(on_io)
        t.start(on_timer)
        b.send(b'x')
        if not busy_in_io:
            _spin(0.02)          # both due in the next pass
        while not any(o.startswith('timer') for o in order) or len(started) < 3:
            sleep(0.001)         # the hub runs the loop
    finally:
        t.close()
        io.close()
        a.close()
        b.close()
    return order


@pytest.mark.parametrize('busy_in_io', [0, 0.02])
def test_greenlets_spawned_by_io_start_before_the_pass_timer(hub, busy_in_io):
    """When a timer fires, the greenlets that io callbacks spawned before it
    have started (0 waiting), whether the timer was already due when the
    pass polled or became due while the io callback ran: gunicorn's gevent
    worker closes its listener when its sleep(1.0) timer fires, under
    handlers its acceptor had just spawned (EBADF) otherwise."""
    loop = hub.loop
    for _ in range(5):
        order = _spawn_then_timer_same_pass(
            loop, lambda f, *a: H.spawn_raw(f, *a), H.sleep, busy_in_io)
        assert order == ['io', 'h0', 'h1', 'h2', 'timer:0'], order


def test_greenlets_spawned_by_io_start_before_the_pass_timer_gevent():
    """The same with gevent's hub: on our loop, and on libev (where the
    pass's expired timer runs before its io: nothing is waiting either)."""
    if _util.compat_python() is None:
        pytest.skip('compat venv absent (make compat-venv)')
    code = '''
        import socket, sys, time
        sys.path.insert(0, %r)
        import gevent
        from test_dispatch_order import _spawn_then_timer_same_pass
        loop = gevent.get_hub().loop
        out = []
        for busy in (0, 0.02):
            for _ in range(5):
                order = _spawn_then_timer_same_pass(loop, gevent.spawn_raw, gevent.sleep, busy)
                out.append([o for o in order if o.startswith('timer')][0])
        print(type(loop).__module__, ' '.join(out))
    ''' % _util.TESTS
    ours = _util.run_gevent(code)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.split() == ['gevent_c.core'] + ['timer:0'] * 10, ours.stdout
    libev = _util.run_gevent(code, env={'GEVENT_LOOP': 'libev-cext'})
    assert libev.returncode == 0, libev.stderr
    assert libev.stdout.split() == ['gevent.libev.corecext'] + ['timer:0'] * 10, libev.stdout
