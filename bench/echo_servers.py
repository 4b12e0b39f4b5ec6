"""The echo benchmark's servers: ``python echo_servers.py IMPL [LIFETIME_SECONDS]``.

Binds a TCP listener on 127.0.0.1 (a free port), prints the port on one line, then echoes every
byte it receives on every connection until it is killed (bench/echo.py sends SIGTERM to its PID)
or LIFETIME_SECONDS pass (SIGALRM, default 300: a server left behind stops by itself).  Prints
``na: reason`` instead of a port, and exits 3, when IMPL's library is not installed.

IMPL:
- ``gevent_c``, ``gevent``: one greenlet per connection, written against the hub API the two
  share (``get_hub().loop.io``, ``get_hub().wait``, ``spawn_raw``): non-blocking
  ``recv_into``/``send`` on the socket, and ``hub.wait()`` on the connection's io watcher when a
  call would block.
- ``gevent_c-io``: the same on gevent_c, with the io watchers' ``recv_into()``/``send()``.
- ``asyncio``, ``uvloop``: an ``asyncio.Protocol`` whose ``data_received`` writes the data back.
"""
import os
import signal
import socket
import sys

BUF = 65536


def listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 0))
    s.listen(1024)
    return s


def ready(port):
    sys.stdout.write('%d\n' % port)
    sys.stdout.flush()


def accept_forever(hub, spawn, handle):
    """Accept connections on a new listener, each in its own greenlet: spawn(handle, conn)."""
    lsock = listener()
    lsock.setblocking(False)
    incoming = hub.loop.io(lsock.fileno(), 1)
    ready(lsock.getsockname()[1])
    while True:
        hub.wait(incoming)
        while True:
            try:
                conn, _ = lsock.accept()
            except BlockingIOError:
                break
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            spawn(handle, conn)


def greenlet_server(hubmod):
    """One greenlet per connection on a gevent-style hub (gevent_c.hub or gevent.hub)."""
    hub = hubmod.get_hub()
    loop, wait, spawn = hub.loop, hub.wait, hubmod.spawn_raw
    READ, WRITE = 1, 2

    def handle(sock):
        fd = sock.fileno()
        readable = loop.io(fd, READ)
        writable = None
        # One buffer per connection: recv(65536) would malloc 64 KiB and shrink it per call.
        buf = bytearray(BUF)
        view = memoryview(buf)
        recv_into, send = sock.recv_into, sock.send
        try:
            while True:
                # The peer has to answer before there is anything to read, so wait first: a
                # recv() first would fail with EAGAIN on almost every round trip.
                wait(readable)
                try:
                    n = recv_into(buf)
                except BlockingIOError:
                    continue
                if not n:
                    break
                try:
                    sent = send(view[:n])
                except BlockingIOError:
                    sent = 0
                while sent < n:               # the send buffer was full: wait for room
                    if writable is None:
                        writable = loop.io(fd, WRITE)
                    wait(writable)
                    try:
                        sent += send(view[sent:n])
                    except BlockingIOError:
                        pass
        except OSError:         # ECONNRESET from a client that went away
            pass
        finally:
            readable.close()
            if writable is not None:
                writable.close()
            sock.close()

    accept_forever(hub, spawn, handle)


def io_server():
    """gevent_c's own server path: the same greenlet per connection, with the io watchers'
    C-level ``recv_into()`` and ``send()`` (each waits on its watcher when it would block)."""
    import gevent_c.hub as H
    hub = H.get_hub()
    loop = hub.loop
    READ, WRITE = 1, 2

    def handle(sock):
        fd = sock.fileno()
        readable, writable = loop.io(fd, READ), loop.io(fd, WRITE)
        buf = bytearray(BUF)
        view = memoryview(buf)
        recv_into, send = readable.recv_into, writable.send
        try:
            while True:
                n = recv_into(buf)
                if not n:
                    break
                sent = send(view[:n])
                while sent < n:
                    sent += send(view[sent:n])
        except OSError:         # ECONNRESET from a client that went away
            pass
        finally:
            readable.close()
            writable.close()
            sock.close()

    accept_forever(hub, H.spawn_raw, handle)


def protocol_server(loop):
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.write = transport.write     # asyncio and uvloop both set TCP_NODELAY

        def data_received(self, data):
            self.write(data)

    server = loop.run_until_complete(loop.create_server(Echo, sock=listener()))
    ready(server.sockets[0].getsockname()[1])
    loop.run_forever()


def main(argv):
    impl = argv[1]
    signal.alarm(int(argv[2]) if len(argv) > 2 else 300)   # default action: terminate
    try:
        if impl in ('gevent_c', 'gevent_c-io'):
            import gevent_c.hub as hubmod
        elif impl == 'gevent':
            os.environ.pop('GEVENT_LOOP', None)
            import gevent.hub as hubmod
        elif impl == 'asyncio':
            import asyncio
            loop = asyncio.new_event_loop()
        elif impl == 'uvloop':
            import uvloop
            loop = uvloop.new_event_loop()
        else:
            raise SystemExit('unknown implementation %r' % impl)
    except ImportError as e:
        sys.stdout.write('na: %s\n' % e)
        sys.stdout.flush()
        return 3
    if impl == 'gevent_c-io':
        io_server()
    elif impl in ('gevent_c', 'gevent'):
        greenlet_server(hubmod)
    else:
        protocol_server(loop)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
