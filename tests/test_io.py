"""io watchers (docs/semantics.md, 'io'), their error behaviour and where gevent
crashes: validation,
events, pass_events/EVENTS, multiplexing many watchers per fd, and closing a
watched fd (always in a subprocess: an abort there gives exit code -6)."""
import errno
import os
import re
import socket
import sys
import textwrap
import time

import pytest

import gevent_c.core as core
import gevent_c.hub as H
from _util import last_line, untimed
from _util import noop as _noop


# the child's start for the subprocess scenarios below (an abort there is
# exit code -6, a spinning loop shows as CPU time while idle)
CHILD_PRELUDE = textwrap.dedent('''
    import os, socket, time
    import gevent_c.hub as H
    loop = H.get_hub().loop

    def idle_cpu(seconds=0.3):
        # the CPU time the process spends while the hub sleeps `seconds`
        t0 = time.process_time()
        H.sleep(seconds)
        return time.process_time() - t0
''')


def _alive(check_py, code, timeout):
    """Run code after CHILD_PRELUDE in a fresh interpreter: it must run to
    its end and exit 0 (no abort, no hang)."""
    out = check_py(CHILD_PRELUDE + textwrap.dedent(code) + "print('alive')\n",
                   timeout=timeout)
    assert 'alive' in out


# ---------------------------------------------------------------- validation


def test_check_negative_fd_and_bad_mask(loop):
    # check: loop.io(-1, 1) -> ValueError; loop.io(0, 8) -> ValueError
    with pytest.raises(ValueError):
        loop.io(-1, 1)
    with pytest.raises(ValueError):
        loop.io(0, 8)


def test_negative_fd_message(loop):
    with pytest.raises(ValueError) as ei:
        loop.io(-1, 1)
    assert str(ei.value) == 'fd must be non-negative: -1'


def test_bad_mask_message(loop):
    with pytest.raises(ValueError) as ei:
        loop.io(0, 8)
    assert str(ei.value) == 'illegal event mask: 8'


@pytest.mark.parametrize('mask', [4, -1, 256, 0x83])
def test_other_bad_masks(loop, pipe, mask):
    with pytest.raises(ValueError):
        loop.io(pipe[0], mask)


def test_check_closed_fd_ebadf(loop):
    # check: a closed fd and fd 100000 -> OSError EBADF at creation
    fd = os.open('/dev/null', os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as ei:
        loop.io(fd, 1)
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError) as ei:
        loop.io(100000, 1)
    assert ei.value.errno == errno.EBADF


def test_non_int_fd_type_error(loop):
    with pytest.raises(TypeError):
        loop.io('3', 1)


# ---------------------------------------------------------------- attributes


def test_check_attributes(loop, pipe):
    # check: fd, events == 1 (no libev 0x80 bit), events_str; io(r, 3).events == 3
    r, w = pipe
    iow = loop.io(r, core.READ)
    try:
        assert iow.fd == r
        assert iow.events == 1
        assert iow.events_str == 'READ'
    finally:
        iow.close()
    iow = loop.io(r, 3)
    try:
        assert iow.events == 3
    finally:
        iow.close()


def test_events_exact_while_active(loop, pipe):
    # libev reported 129 for READ; gevent_c reports exactly the mask,
    # also while active.
    r, w = pipe
    iow = loop.io(w, core.WRITE)
    try:
        iow.start(_noop)
        assert iow.events == core.WRITE
        assert iow.events_str == 'WRITE'
    finally:
        iow.close()


def test_events_str_readwrite(loop, pipe):
    iow = loop.io(pipe[0], core.READWRITE)
    try:
        assert iow.events_str == 'READ|WRITE'
    finally:
        iow.close()


def test_repr_details(loop, pipe):
    r, w = pipe
    iow = loop.io(r, core.READ)
    try:
        assert re.match(r'^<io at 0x[0-9a-f]+ fd=%d events=READ' % r, repr(iow)), repr(iow)
    finally:
        iow.close()


def test_check_fd_read_only_while_active(loop, pipe):
    # check: iow.start(f); iow.fd = w -> AttributeError
    r, w = pipe
    iow = loop.io(r, 1)
    try:
        iow.start(_noop)
        with pytest.raises(AttributeError) as ei:
            iow.fd = w
        assert str(ei.value) == "'io' watcher attribute 'fd' is read-only while watcher is active"
        assert iow.fd == r
    finally:
        iow.close()


def test_events_read_only_while_active(loop, pipe):
    r, w = pipe
    iow = loop.io(r, 1)
    try:
        iow.start(_noop)
        with pytest.raises(AttributeError) as ei:
            iow.events = 3
        assert str(ei.value) == "'io' watcher attribute 'events' is read-only while watcher is active"
        assert iow.events == 1
    finally:
        iow.close()


@pytest.mark.parametrize('mask', [4, -1, 8, 256])
def test_events_setter_validates(loop, pipe, mask):
    # gevent 22.10.2 accepted these and aborted on the next start()
    iow = loop.io(pipe[0], 1)
    try:
        with pytest.raises(ValueError):
            iow.events = mask
        assert iow.events == 1
    finally:
        iow.close()


def test_setters_while_inactive(loop, pipe):
    r, w = pipe
    iow = loop.io(r, core.READ)
    try:
        iow.fd = w
        iow.events = core.WRITE
        assert (iow.fd, iow.events) == (w, core.WRITE)
        log = []
        iow.start(lambda: (log.append('w'), iow.stop()))
        H.sleep(0.02)
        assert log == ['w']
    finally:
        iow.close()


def test_fd_setter_validates(loop, pipe):
    iow = loop.io(pipe[0], 1)
    try:
        with pytest.raises(ValueError):
            iow.fd = -1
        fd = os.open('/dev/null', os.O_RDONLY)
        os.close(fd)
        with pytest.raises(OSError) as ei:
            iow.fd = fd
        assert ei.value.errno == errno.EBADF
        assert iow.fd == pipe[0]
    finally:
        iow.close()


# ---------------------------------------------------------------- firing


def test_check_pass_events_and_events_placeholder(loop, pipe):
    # check: pass_events=True -> (1,); core.EVENTS placeholder -> (1, 'tail')
    r, w = pipe
    iow = loop.io(r, core.READ)
    rec = []

    def cb(*args):
        rec.append(args)
        os.read(r, 10)
        iow.stop()

    try:
        os.write(w, b'x')
        iow.start(cb, pass_events=True)
        H.sleep(0.01)
        assert rec == [(1,)]
        os.write(w, b'x')
        iow.start(cb, core.EVENTS, 'tail')
        H.sleep(0.01)
        assert rec == [(1,), (1, 'tail')]
    finally:
        iow.close()


def test_pass_events_with_args(loop, pipe):
    r, w = pipe
    iow = loop.io(w, core.WRITE)
    rec = []
    try:
        iow.start(lambda *a: (rec.append(a), iow.stop()), 'x', pass_events=True)
        H.sleep(0.01)
        assert rec == [(core.WRITE, 'x')]
    finally:
        iow.close()


def test_revents_subset_of_requested(loop):
    a, b = socket.socketpair()
    try:
        a.send(b'x')
        iow = loop.io(b.fileno(), core.READWRITE)
        rec = []
        iow.start(lambda ev: (rec.append(ev), iow.stop()), core.EVENTS)
        H.sleep(0.01)
        iow.close()
        assert len(rec) == 1
        assert rec[0] & core.READWRITE and not rec[0] & ~core.READWRITE, rec
        assert rec[0] == core.READWRITE  # readable and writable
    finally:
        a.close()
        b.close()


def test_hangup_wakes_reader(loop, pipe):
    # the writer closes: the READ watcher wakes with the requested bit set
    r, w = pipe
    iow = loop.io(r, core.READ)
    rec = []
    try:
        iow.start(lambda ev: (rec.append(ev), iow.stop()), core.EVENTS)
        os.close(w)
        H.sleep(0.02)
        assert rec == [core.READ]
    finally:
        iow.close()


def test_events_zero_never_fires(loop, pipe):
    r, w = pipe
    os.write(w, b'x')
    iow = loop.io(r, 0)
    log = []
    try:
        iow.start(log.append, 1)
        H.sleep(0.02)
        assert log == []
        assert iow.active
    finally:
        iow.close()


def test_level_triggered(loop, pipe):
    r, w = pipe
    os.write(w, b'x')
    iow = loop.io(r, core.READ)
    log = []
    try:
        iow.start(log.append, 1)
        for _ in range(5):
            H.sleep(0)
        H.sleep(0.01)
        assert len(log) >= 2, log  # fires again while the fd stays readable
    finally:
        iow.close()


def test_no_fire_without_data(loop, pipe):
    r, w = pipe
    iow = loop.io(r, core.READ)
    log = []
    try:
        iow.start(log.append, 1)
        H.sleep(0.02)
        assert log == []
        os.write(w, b'x')
        H.sleep(0.02)
        assert log
    finally:
        iow.close()


def test_check_two_watchers_same_fd(loop, pipe):
    # check: a and b on the same fd both fire; stopping a leaves b working
    r, w = pipe
    a = loop.io(r, 1)
    b = loop.io(r, 1)
    log = []
    try:
        a.start(log.append, 'a')
        b.start(log.append, 'b')
        os.write(w, b'x')
        H.sleep(0.01)
        assert 'a' in log and 'b' in log
        a.stop()
        del log[:]
        H.sleep(0.01)
        assert 'b' in log and 'a' not in log
        assert b.active
    finally:
        a.close()
        b.close()


def test_watchers_same_fd_different_events(loop):
    s1, s2 = socket.socketpair()
    try:
        rd = loop.io(s1.fileno(), core.READ)
        wr = loop.io(s1.fileno(), core.WRITE)
        log = []
        rd.start(log.append, 'r')
        wr.start(log.append, 'w')
        H.sleep(0.01)
        assert 'w' in log and 'r' not in log, log
        wr.stop()
        s2.send(b'x')
        del log[:]
        H.sleep(0.01)
        assert 'r' in log and 'w' not in log, log
        rd.close()
        wr.close()
    finally:
        s1.close()
        s2.close()


def test_close_one_watcher_others_keep_working(loop, pipe):
    r, w = pipe
    ws = [loop.io(r, 1) for _ in range(3)]
    log = []
    try:
        for i, x in enumerate(ws):
            x.start(log.append, i)
        ws[1].close()
        os.write(w, b'x')
        H.sleep(0.01)
        assert 0 in log and 2 in log and 1 not in log
    finally:
        for x in ws:
            x.close()


def test_hundred_watchers_one_fd_all_fire(loop, pipe):
    r, w = pipe
    ws = [loop.io(r, core.READ) for _ in range(100)]
    fired = set()
    try:
        for i, x in enumerate(ws):
            x.start(lambda i, x: (fired.add(i), x.stop()), i, x)
        os.write(w, b'x')
        deadline = time.monotonic() + 1
        while len(fired) < 100 and time.monotonic() < deadline:
            H.sleep(0.01)
        assert fired == set(range(100)), sorted(set(range(100)) - fired)
        assert not any(x.active for x in ws)
    finally:
        for x in ws:
            x.close()


def test_hundred_watchers_one_fd_all_fire_non_default(L, pipe):
    r, w = pipe
    ws = [L.io(r, core.READ) for _ in range(100)]
    fired = []
    for i, x in enumerate(ws):
        x.start(lambda i, x: (fired.append(i), x.stop()), i, x)
    os.write(w, b'x')
    L.run()  # returns once every watcher stopped itself
    assert sorted(fired) == list(range(100))


def test_hub_wait_on_io_woken_by_thread(hub, loop, pipe):
    import threading
    r, w = pipe
    iow = loop.io(r, core.READ)
    th = threading.Timer(0.05, os.write, (w, b'x'))
    th.start()
    t0 = time.monotonic()
    try:
        hub.wait(iow)
    finally:
        th.join()
        iow.close()
    assert time.monotonic() - t0 < 2


def test_ref_false_io_does_not_keep_run(L, pipe):
    iow = L.io(pipe[0], core.READ, ref=False)
    iow.start(_noop)
    try:
        t0 = time.monotonic()
        L.run()
        assert time.monotonic() - t0 < 1
    finally:
        iow.close()


# ---------------------------------------------------------------- errors


def test_check_io_error_stops_watcher(loop, pipe, stream):
    # check: exactly one 'failed with ZeroDivisionError', iow.active is False
    r, w = pipe
    os.write(w, b'x')
    iow = loop.io(r, 1)

    def bad():
        1 / 0

    try:
        iow.start(bad)
        H.sleep(0.02)
        assert stream.getvalue().count('failed with ZeroDivisionError') == 1, stream.getvalue()
        assert iow.active is False
    finally:
        iow.close()


def test_io_error_context_is_watcher(loop, pipe, stream):
    r, w = pipe
    os.write(w, b'x')
    iow = loop.io(r, 1)
    try:
        iow.start(lambda: 1 / 0)
        H.sleep(0.02)
        assert re.match(r'^<io at 0x[0-9a-f]+ .*> failed with ZeroDivisionError$',
                        untimed(last_line(stream))), stream.getvalue()
    finally:
        iow.close()


def test_io_error_stops_only_failing_watcher(loop, pipe, stream):
    r, w = pipe
    os.write(w, b'x')
    bad = loop.io(r, 1)
    good = loop.io(r, 1)
    log = []
    try:
        bad.start(lambda: 1 / 0)
        good.start(log.append, 1)
        H.sleep(0.02)
        assert bad.active is False
        assert good.active is True
        assert len(log) >= 1
    finally:
        bad.close()
        good.close()


def test_exc_info_clean_in_io_callback(loop, pipe):
    r, w = pipe
    os.write(w, b'x')
    iow = loop.io(r, 1)
    rec = []
    try:
        try:
            raise RuntimeError('main')
        except RuntimeError:
            iow.start(lambda: (rec.append(sys.exc_info()), iow.stop()))
            H.sleep(0.01)
            assert sys.exc_info()[0] is RuntimeError
        assert rec == [(None, None, None)]
    finally:
        iow.close()


# ---------------------------------------------------------------- closing a watched fd
# gevent 22.10.2 aborts the process here. Subprocess: -6 means abort.


def test_check_close_watched_fd_survives(check_py):
    # check: iow.start(f); os.close(r); H.sleep(0.05) -> alive; stop + start -> OSError EBADF
    _alive(check_py, '''
        import errno
        r, w = os.pipe()
        iow = loop.io(r, 1)
        iow.start(lambda: None)
        H.sleep(0.01)
        os.close(r)
        H.sleep(0.05)
        iow.stop()
        try:
            iow.start(lambda: None)
        except OSError as e:
            assert e.errno == errno.EBADF, e
        else:
            raise AssertionError('restart on a closed fd did not raise')
        H.sleep(0.01)
    ''', timeout=15)


def test_close_watched_fd_other_watcher_start_ebadf(check_py):
    check_py('''
        import errno, os
        import gevent_c.hub as H
        loop = H.get_hub().loop
        r, w = os.pipe()
        a = loop.io(r, 1)
        b = loop.io(r, 1)
        a.start(lambda: None)
        H.sleep(0.01)
        os.close(r)
        H.sleep(0.02)
        try:
            b.start(lambda: None)
        except OSError as e:
            assert e.errno == errno.EBADF, e
        else:
            raise AssertionError('start on a closed fd did not raise')
        a.close(); b.close()
        H.sleep(0.01)
    ''', timeout=15)


def test_close_fd_while_many_watchers_wait(check_py):
    _alive(check_py, '''
        r, w = os.pipe()
        ws = [loop.io(r, 1) for _ in range(10)] + [loop.io(w, 2)]
        for x in ws[:10]:
            x.start(lambda: None)
        H.sleep(0.01)
        os.close(r)
        os.close(w)
        for _ in range(5):
            H.sleep(0.01)
        for x in ws:
            x.close()
        H.sleep(0.01)
    ''', timeout=15)


def test_close_fd_then_reuse_number(check_py):
    # close a watched fd; the number is reused by a new pipe; a new watcher on it works
    _alive(check_py, '''
        r, w = os.pipe()
        old = loop.io(r, 1)
        old.start(lambda: None)
        H.sleep(0.01)
        os.close(r); os.close(w)
        H.sleep(0.01)
        r2, w2 = os.pipe()
        new = loop.io(r2, 1)
        log = []
        new.start(lambda: (log.append(1), new.stop()))
        os.write(w2, b'x')
        for _ in range(10):
            H.sleep(0.01)
            if log:
                break
        assert log == [1], log
        old.close(); new.close()
    ''', timeout=15)


def test_close_fd_from_thread_while_main_blocked(check_py):
    # main waits on the fd in hub.wait(); a thread closes it. The process must
    # neither abort nor hang forever (a timer bounds the wait).
    out = check_py('''
        import os, threading
        import gevent_c.hub as H
        hub = H.get_hub()
        loop = hub.loop
        r, w = os.pipe()
        iow = loop.io(r, 1)
        th = threading.Timer(0.05, os.close, (r,))
        th.start()
        g = H.getcurrent()
        t = loop.timer(0.5)
        t.start(g.switch, 'timeout')
        iow.start(g.switch, 'io')
        res = hub.switch()
        th.join()
        print('woke', res)
        iow.close(); t.close()
        H.sleep(0.01)
        print('alive')
    ''', timeout=15)
    assert 'alive' in out


def test_close_fd_inside_io_callback(check_py):
    out = check_py('''
        import os
        import gevent_c.hub as H
        loop = H.get_hub().loop
        r, w = os.pipe()
        os.write(w, b'x')
        a = loop.io(r, 1)
        b = loop.io(r, 1)
        log = []
        def cb(name):
            log.append(name)
            try:
                os.close(r)
            except OSError:
                pass
        a.start(cb, 'a')
        b.start(cb, 'b')
        for _ in range(5):
            H.sleep(0.01)
        a.close(); b.close()
        H.sleep(0.01)
        assert log, log
        print('alive', log)
    ''', timeout=15)
    assert 'alive' in out


def test_close_watched_fd_on_private_loop(check_py):
    out = check_py('''
        import os
        import gevent_c.core as core
        L = core.loop(default=False)
        r, w = os.pipe()
        iow = L.io(r, 1)
        iow.start(lambda: None)
        t = L.timer(0.01)
        t.start(lambda: os.close(r))
        t2 = L.timer(0.05)
        t2.start(lambda: iow.stop())
        L.run()
        iow.close()
        L.destroy()
        print('alive')
    ''', timeout=15)
    assert 'alive' in out


def test_closing_fd_wakes_waiters(check_py):
    # closing_fd: returns True when active watchers exist and
    # wakes them (their callback runs once) before the fd is released.
    _alive(check_py, '''
        r, w = os.pipe()
        a = loop.io(r, 1)
        b = loop.io(r, 1)
        log = []
        a.start(log.append, 'a')
        b.start(log.append, 'b')
        H.sleep(0.01)
        assert log == [], log
        assert loop.closing_fd(r) is True
        H.sleep(0.01)
        assert sorted(log) == ['a', 'b'], log
        a.stop(); b.stop()
        os.close(r)
        H.sleep(0.01)
        a.close(); b.close()
    ''', timeout=15)


def test_closing_fd_without_watchers(loop, pipe):
    assert loop.closing_fd(pipe[0]) is False
    iow = loop.io(pipe[0], 1)  # not started
    try:
        assert loop.closing_fd(pipe[0]) is False
    finally:
        iow.close()


def test_closing_fd_refuses_new_watchers_until_closed(loop):
    # gevent's select.poll() reports an fd whose close was announced with
    # closing_fd() as POLLNVAL: a new io watcher on it raises EBADF while it
    # still names the same file; once closed and the number reused, it works.
    a, b = socket.socketpair()
    fd = a.fileno()
    w = loop.io(fd, 1)
    w.start(_noop)
    try:
        assert loop.closing_fd(fd) is True
        with pytest.raises(OSError) as ei:
            loop.io(fd, 1)
        assert ei.value.errno == errno.EBADF
        assert 'being closed' in str(ei.value)
    finally:
        w.close()
    a.close()
    c, d = socket.socketpair()   # most likely reuses the number
    try:
        w2 = loop.io(c.fileno(), 1)
        w2.close()
    finally:
        for s in (b, c, d):
            s.close()


def test_closing_fd_mark_expires(loop):
    # closing_fd() without a close: the refusal lasts two loop iterations
    a, b = socket.socketpair()
    try:
        w = loop.io(a.fileno(), 1)
        w.start(_noop)
        assert loop.closing_fd(a.fileno()) is True
        w.close()
        for _ in range(3):
            H.sleep(0.001)
        w2 = loop.io(a.fileno(), 1)
        w2.close()
    finally:
        a.close()
        b.close()


def test_regular_file_is_always_ready(loop, tmp_path):
    # epoll refuses regular files (EPERM); like poll(2) and libev, an io
    # watcher on one reports it ready on every pass instead of failing.
    path = tmp_path / 'f'
    path.write_bytes(b'data')
    fd = os.open(str(path), os.O_RDWR)
    try:
        for mask in (1, 2, 3):
            w = loop.io(fd, mask)
            got = []
            w.start(lambda events, got=got: got.append(events), pass_events=True)
            try:
                H.sleep(0.01)
            finally:
                w.close()
            assert len(got) >= 2, got   # fired again on later passes
            assert set(got) == {mask}, got
        H.get_hub().wait(loop.io(fd, 1))   # a wait returns at once
    finally:
        os.close(fd)


def test_regular_file_watcher_does_not_block_loop(L, tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'')
    fd = os.open(str(path), os.O_RDONLY)
    try:
        w = L.io(fd, 1)
        n = []
        def cb():
            n.append(1)
            if len(n) == 3:
                w.stop()
        w.start(cb)
        L.run()          # three passes, then nothing keeps it alive
        assert n == [1, 1, 1]
        w.close()
    finally:
        os.close(fd)


def test_due_timer_started_from_poll_dispatch_waits_for_next_poll(loop):
    # A 0 s timer started while the poll's events are dispatched does not
    # fire before the next poll: io ready by then is seen first (gevent's
    # selectors do select(timeout=0) right after gevent.idle()).
    a, b = socket.socketpair()
    try:
        b.send(b'x')
        log = []
        first = loop.idle()      # dispatched with the poll's events
        rd = loop.io(a.fileno(), 1)
        t0 = loop.timer(0)

        def kick():
            # runs from the dispatch of a pass: start io + 0 s timer
            first.stop()
            rd.start(lambda: (log.append('io'), rd.stop()))
            t0.start(lambda: log.append('timer'))
        first.start(kick)
        H.sleep(0.02)
        assert log == ['io', 'timer'], log
        for w in (first, rd, t0):
            w.close()
    finally:
        a.close()
        b.close()


def test_rearm_after_fd_reused_by_regular_file(check_py, tmp_path):
    # An active watcher's fd is closed behind the loop's back and the number
    # reused by a regular file; reinit() re-arms every native poll.  libuv
    # abort()s if epoll_ctl fails (EPERM for a file), so the loop re-checks
    # the file before arming: the watcher now sees an always-ready file.
    _alive(check_py, '''
        a, b = socket.socketpair()
        fd = a.detach()
        log = []
        w = loop.io(fd, 1)
        w.start(lambda: log.append('io'))
        H.sleep(0.01)
        assert log == [], log
        os.close(fd)
        f = os.open(%r, os.O_RDWR | os.O_CREAT)
        assert f == fd, (f, fd)
        loop.reinit()
        H.sleep(0.01)
        assert log, log
        w.close()
        os.close(f)
    ''' % str(tmp_path / 'f'), timeout=15)


# ---------------------------------------------------------------- epoll registration
# epoll registers the open file, not the fd number.  These run in a child:
# libuv abort()s when an epoll_ctl it makes fails, and a leftover
# registration spins the loop.

def test_stopped_watcher_leaves_no_registration_behind(check_py):
    # The documented order: stop (or close) the watcher, then close the fd.
    # When another descriptor keeps the file open (a dup here; a forked
    # child's copy in real programs) and readable, the loop must have
    # forgotten it: it idles without burning CPU, and a new, empty pipe
    # given the same fd number is not reported readable.
    _alive(check_py, '''
        for how in ('stop', 'close'):
            a, b = socket.socketpair()
            fd = a.fileno()
            keep = os.dup(fd)
            w = loop.io(fd, 1)
            w.start(lambda: None)
            b.send(b'x')                    # stays readable: never read
            H.sleep(0.01)
            getattr(w, how)()
            a.close()
            cpu = idle_cpu()
            assert cpu < 0.1, (how, 'busy while idle', cpu)
            r, wr = os.pipe()
            if r != fd:
                os.dup2(r, fd); os.close(r); r = fd
            fired = []
            w2 = loop.io(r, 1)
            w2.start(fired.append, 1)
            H.sleep(0.05)
            w2.close()
            assert fired == [], (how, len(fired))
            for x in (r, wr, keep):
                os.close(x)
            b.close()
    ''', timeout=20)


def test_fd_refused_by_epoll_at_arm_time_kills_its_watchers(check_py):
    # Two fds that pass every check at start() but that epoll refuses when
    # the loop arms them: an epoll fd that began watching the loop's own fd
    # after its watcher was made (ELOOP), and an active watcher's number
    # reopened on the same FIFO with O_PATH (same st_dev/st_ino; EBADF).
    # No abort: each watcher is woken once with its events and stopped
    # (visibly inactive), and the loop goes on.
    _alive(check_py, '''
        import select, tempfile
        ep = select.epoll()
        w = loop.io(ep.fileno(), 1)
        ep.register(loop.fileno(), select.EPOLLIN)
        got = []
        w.start(got.append, 'eloop')
        H.sleep(0.02)
        assert got == ['eloop'], got
        assert not w.active
        w.close(); ep.close()

        d = tempfile.mkdtemp(); p = os.path.join(d, 'fifo'); os.mkfifo(p)
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        a = loop.io(fd, 1); a.start(got.append, 'a')
        H.sleep(0.01)
        op = os.open(p, os.O_PATH)
        os.dup2(op, fd); os.close(op)
        b = loop.io(fd, 2); b.start(got.append, 'b')
        H.sleep(0.02)
        assert sorted(got[1:]) == ['a', 'b'], got
        assert not a.active and not b.active
        a.close(); b.close(); os.close(fd)
        # the loop still works
        r, wr = os.pipe()
        c = loop.io(r, 1); c.start(got.append, 'c')
        os.write(wr, b'x')
        H.sleep(0.02)
        assert got[-1] == 'c', got
    ''', timeout=20)


def test_closing_fd_not_followed_by_close_keeps_delivering(check_py):
    # closing_fd() wakes the fd's watchers and drops the native poll, because
    # the caller is about to close the fd.  If it does not, a persistent
    # watcher left active must not go deaf: once the closing mark expires it
    # is armed again and keeps reporting the fd (as libev does).
    _alive(check_py, '''
        r, wr = os.pipe()
        got = []
        w = loop.io(r, 1)
        w.start(got.append, 1)
        H.sleep(0.01)
        assert got == []
        assert loop.closing_fd(r) is True
        H.sleep(0.01)
        assert got == [1], got          # the closing_fd wake-up
        for _ in range(3):
            H.sleep(0.001)
        assert w.active
        del got[:]
        os.write(wr, b'x')
        H.sleep(0.02)
        assert got, 'active watcher never fired again'
        w.close()
        os.close(r); os.close(wr)
    ''', timeout=20)



def test_forked_child_and_the_parents_registrations(check_py):
    # A forked child gets its own epoll set: a watcher it stops does not take
    # the fd out of the parent's.  And the child's copy of an fd keeps the
    # file open after the parent stops its watcher and closes the fd: the
    # parent's loop must have forgotten it (idle, no spinning).
    _alive(check_py, '''
        a, b = socket.socketpair()
        got = []
        w = loop.io(a.fileno(), 1)
        w.start(got.append, 1)
        H.sleep(0.01)
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            w.stop()                    # in the child, before its loop ran
            H.sleep(0.01)
            os.write(up_w, b'k')
            os.read(down_r, 1)          # holds a copy of `a` until told to go
            os._exit(0)
        assert os.read(up_r, 1) == b'k'
        b.send(b'x')                    # stays readable: never read
        H.sleep(0.05)
        assert got, "the child's stop took the fd out of the parent's epoll"
        w.stop()
        a.close()
        cpu = idle_cpu()
        os.write(down_w, b'q')
        os.waitpid(pid, 0)
        assert cpu < 0.1, ('busy while idle', cpu)
    ''', timeout=20)


def test_poll_error_keeps_reporting_and_leaves_nothing_behind(check_py):
    # A pipe's write end whose read end is closed polls as an error (POLLERR):
    # libuv stops such a poll by itself.  An active watcher must keep being
    # told (not go deaf), and once stopped and its fd closed while a dup keeps
    # the file, the loop must have forgotten it (idle, no spinning).
    _alive(check_py, '''
        r, w = os.pipe()
        keep = os.dup(w)
        got = []
        iow = loop.io(w, 2)
        iow.start(got.append, 1)
        H.sleep(0.01)
        os.close(r)
        del got[:]
        H.sleep(0.02)
        n1 = len(got)
        H.sleep(0.02)
        assert iow.active and n1 > 0 and len(got) > n1, (n1, len(got))
        iow.stop()
        os.close(w)
        cpu = idle_cpu()
        assert cpu < 0.1, ('busy while idle', cpu)
        os.close(keep)
    ''', timeout=20)
