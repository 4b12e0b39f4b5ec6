"""hub.wait() on gevent_c's own watchers switches straight back into the waiting greenlet
(no Waiter per wait).  What stays observable: the callback while it waits, cancel_wait, a
callback replaced during the wait, wake-ups by anything else, and references."""
import socket
import sys

import gevent_c.hub as H


def test_callback_reads_as_the_greenlets_switch_while_waiting(loop, hub):
    t = loop.timer(10)
    g = H.spawn_raw(hub.wait, t)
    H.sleep(0)
    try:
        assert t.active
        assert t.callback.__self__ is g       # cancel_wait throws into callback.__self__
        assert t.args is None
    finally:
        H.kill(g)
        H.sleep(0)
    assert g.dead
    assert t.callback is None and not t.active
    t.close()


def test_io_wait_wakes_when_readable(loop, hub):
    a, b = socket.socketpair()
    a.setblocking(False)
    w = loop.io(a.fileno(), 1)
    got = []

    def reader():
        for _ in range(3):
            got.append(hub.wait(w))
            got.append(a.recv(1))

    g = H.spawn_raw(reader)
    try:
        for c in b'xyz':
            H.sleep(0)
            assert not got or got[-1] != bytes([c])
            b.send(bytes([c]))
            H.sleep(0.01)
        assert got == [None, b'x', None, b'y', None, b'z']
        assert g.dead and not w.active and w.callback is None
    finally:
        w.close()
        a.close()
        b.close()


def test_cancel_wait_on_io(loop, hub):
    a, b = socket.socketpair()
    w = loop.io(a.fileno(), 1)
    got = []

    def waiter():
        try:
            hub.wait(w)
        except ValueError as e:
            got.append(e)

    g = H.spawn_raw(waiter)
    H.sleep(0)
    err = ValueError('cancelled')
    hub.cancel_wait(w, err)
    H.sleep(0)
    H.sleep(0)
    try:
        assert got == [err] and g.dead and not w.active
    finally:
        w.close()
        a.close()
        b.close()


def test_callback_replaced_during_wait_is_called_as_given(loop, hub):
    t = loop.timer(0.01)
    log = []
    g = H.spawn_raw(hub.wait, t)
    H.sleep(0)
    t.callback = log.append
    t.args = ('fired',)
    H.sleep(0.05)
    try:
        assert log == ['fired']
        assert not g.dead                     # the timer no longer wakes it
    finally:
        H.kill(g)
        H.sleep(0)
        t.close()
    assert g.dead


def test_wake_up_by_another_switch_is_invalid(loop, hub):
    a, b = socket.socketpair()
    w = loop.io(a.fileno(), 1)
    got = []

    def body():
        loop.run_callback(H.getcurrent().switch, 'stray')
        try:
            hub.wait(w)
        except H.InvalidSwitchError as e:
            got.append((str(e), w.active))

    g = H.spawn_raw(body)
    H.sleep(0.01)
    try:
        assert g.dead and len(got) == 1
        assert "got 'stray'" in got[0][0] and got[0][1] is False
    finally:
        w.close()
        a.close()
        b.close()


def test_waits_leave_no_references_behind(loop, hub):
    a, b = socket.socketpair()
    a.setblocking(False)
    w = loop.io(a.fileno(), 1)
    counts = []

    def pingpong():
        me = H.getcurrent()
        for i in range(300):
            if i in (100, 299):
                counts.append((sys.getrefcount(me), sys.getrefcount(w)))
            b.send(b'x')
            hub.wait(w)
            a.recv(1)

    g = H.spawn_raw(pingpong)
    H.sleep(0.5)
    try:
        assert g.dead
        assert counts[0] == counts[1]
    finally:
        w.close()
        a.close()
        b.close()
