"""io.recv_into() and io.send(): a greenlet server's receive and send on its io watchers, waiting
on the watcher (hub.wait) when the call would block."""
import errno
import os
import socket

import greenlet
import pytest

import gevent_c.hub as H


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_recv_into_waits_then_receives_and_reports_eof(loop, hub, pair):
    a, b = pair
    r = loop.io(a.fileno(), 1)
    buf = bytearray(8)
    got = []

    def reader():
        while True:
            n = r.recv_into(buf)
            got.append(bytes(buf[:n]))
            if not n:
                return

    g = H.spawn_raw(reader)
    H.sleep(0.01)
    assert got == [] and r.active          # waiting on its watcher
    b.send(b'hello')
    H.sleep(0.01)
    b.send(b'0123456789')                  # longer than the buffer: two receives
    H.sleep(0.01)
    b.shutdown(socket.SHUT_WR)
    H.sleep(0.01)
    assert got == [b'hello', b'01234567', b'89', b'']
    assert g.dead and not r.active
    r.close()


def test_recv_into_data_already_there_after_a_short_read(loop, hub, pair):
    # a short read makes the next call wait first: it must still return the
    # data that arrived meanwhile (the wait ends at once)
    a, b = pair
    r = loop.io(a.fileno(), 1)
    buf = bytearray(100)
    b.send(b'one')
    assert r.recv_into(buf) == 3
    b.send(b'two')
    assert r.recv_into(buf) == 3 and buf[:3] == b'two'
    r.close()


def test_recv_into_nbytes(loop, pair):
    a, b = pair
    r = loop.io(a.fileno(), 1)
    buf = bytearray(10)
    b.send(b'abcdef')
    assert r.recv_into(buf, 2) == 2 and buf[:2] == b'ab'
    assert r.recv_into(buf, nbytes=100) == 4 and buf[:4] == b'cdef'
    with pytest.raises(ValueError):
        r.recv_into(buf, -1)
    assert r.recv_into(bytearray(0)) == 0
    r.close()


def test_bad_arguments_and_states(loop, hub, pair):
    a, b = pair
    r, w = loop.io(a.fileno(), 1), loop.io(a.fileno(), 2)
    with pytest.raises(TypeError):
        r.recv_into(b'read-only')
    with pytest.raises(TypeError):
        w.send('text')
    with pytest.raises(ValueError, match='READ'):
        w.recv_into(bytearray(4))
    with pytest.raises(ValueError, match='WRITE'):
        r.send(b'x')
    r.start(lambda: None)
    with pytest.raises(H.ConcurrentObjectUseError):
        r.recv_into(bytearray(4))          # nothing there: it would wait on a started watcher
    r.stop()
    r.close()
    with pytest.raises(ValueError, match='closed'):
        r.recv_into(bytearray(4))
    w.close()


def test_not_a_socket(loop, pipe):
    rfd, wfd = pipe
    os.write(wfd, b'x')
    r = loop.io(rfd, 1)
    with pytest.raises(OSError) as ei:
        r.recv_into(bytearray(4))
    assert ei.value.errno == errno.ENOTSOCK
    r.close()


def _spawn_writer(w, data):
    """A greenlet sending all of data through w; the list it returns gets
    the total sent once the writer is done."""
    sent = []

    def writer():
        view = memoryview(data)
        total = 0
        while total < len(data):
            total += w.send(view[total:])
        sent.append(total)

    return sent, H.spawn_raw(writer)


def _drain(b, n):
    """Read n bytes from socket b (non-blocking, sleeping while empty), then
    let the hub run once more."""
    received = 0
    b.setblocking(False)
    while received < n:
        try:
            received += len(b.recv(1 << 16))
        except BlockingIOError:
            H.sleep(0.001)
    H.sleep(0)


def test_send_waits_for_room(loop, hub, pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    w = loop.io(a.fileno(), 2)
    data = b'x' * (1 << 20)
    sent, g = _spawn_writer(w, data)
    H.sleep(0.01)
    assert not sent and w.active           # the buffer is full: waiting for room
    _drain(b, len(data))
    assert sent == [len(data)] and g.dead
    w.close()


def test_send_to_a_closed_peer_raises_epipe_without_sigpipe(loop, pair):
    a, b = pair
    w = loop.io(a.fileno(), 2)
    b.close()
    with pytest.raises(OSError) as ei:
        for _ in range(3):
            w.send(b'x' * 100)
    assert ei.value.errno in (errno.EPIPE, errno.ECONNRESET)
    w.close()


def test_a_throw_into_the_waiting_greenlet_ends_the_wait(loop, hub, pair):
    a, b = pair
    r = loop.io(a.fileno(), 1)
    buf = bytearray(4)
    result = []

    def reader():
        try:
            r.recv_into(buf)
        except KeyError as e:
            result.append(e)

    g = H.spawn_raw(reader)
    H.sleep(0.01)
    assert r.active
    hub.loop.run_callback(g.throw, KeyError('stop'))
    H.sleep(0.01)
    assert result and not r.active
    buf.extend(b'resizable again')         # the buffer export was released
    b.send(b'late')
    assert r.recv_into(buf) == 4
    r.close()


def test_from_a_foreign_thread(loop, pair):
    import threading
    a, b = pair
    r = loop.io(a.fileno(), 1)
    errors = []

    def other():
        try:
            r.recv_into(bytearray(4))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    # that thread's hub runs another loop (or, were this one polling, the
    # owner check refuses): a clear error, and the watcher was never started
    assert len(errors) == 1 and isinstance(errors[0], (ValueError, RuntimeError)), errors
    assert not r.active
    r.close()


def test_the_waiting_greenlet_is_killed(loop, hub, pair):
    a, b = pair
    r = loop.io(a.fileno(), 1)
    g = H.spawn_raw(r.recv_into, bytearray(4))
    H.sleep(0.01)
    assert r.active
    H.kill(g)
    H.sleep(0.01)
    assert g.dead and not r.active
    assert isinstance(g, greenlet.greenlet)
    r.close()


def _passes_while(loop, seconds):
    """How many loop passes the hub makes while this greenlet sleeps."""
    before = loop.iteration
    H.sleep(seconds)
    return loop.iteration - before


def test_recv_into_on_a_read_write_watcher_waits_for_read_only(loop, hub, pair):
    # an idle connection is writable: a wait for READ|WRITE would end at
    # once, forever (a busy loop at 100% CPU); recv_into waits for READ
    a, b = pair
    w = loop.io(a.fileno(), 3)
    buf = bytearray(8)
    got = []
    g = H.spawn_raw(lambda: got.append(bytes(buf[:w.recv_into(buf)])))
    H.sleep(0.01)
    assert w.active and not got
    passes = _passes_while(loop, 0.2)
    assert passes < 50, passes              # a spinning wait makes thousands
    assert w.events == 1                    # narrowed while it waits
    b.send(b'hi')
    H.sleep(0.01)
    assert got == [b'hi'] and g.dead and not w.active and w.events == 3
    w.close()


def test_send_on_a_read_write_watcher_waits_for_write_only(loop, hub, pair):
    # the peer's unread data makes the fd readable: send() on a full buffer
    # waits for WRITE, not for the READ that is always there
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.send(b'unread')
    w = loop.io(a.fileno(), 3)
    data = b'x' * (1 << 20)
    sent, g = _spawn_writer(w, data)
    H.sleep(0.01)
    assert w.active and not sent
    passes = _passes_while(loop, 0.2)
    assert passes < 50, passes
    assert w.events == 2
    _drain(b, len(data))
    assert sent == [len(data)] and g.dead and w.events == 3
    w.close()
