"""Close an fd that an io watcher watched, reopen the same fd number as a new
file of the same kind, watch it, make it ready: the event must arrive.

Run as a script: ``python fd_reuse_matrix.py hub`` (gevent_c.hub) or
``python fd_reuse_matrix.py gevent`` (gevent, on the loop named by
GEVENT_LOOP).  Prints one JSON object: {"kind/mode": "ok" | "skip: why" |
"FAIL: why"}.  tests/test_fd_reuse.py runs it in a subprocess.

Kinds: every sort of fd a program polls (sockets, pipes, and the
anonymous-inode fds that share one inode: eventfd, signalfd, timerfd, epoll,
pidfd; memfd and regular files, which epoll refuses; ttys, whose master side
is the same /dev/ptmx inode every time).  Modes: the old watcher stopped,
the fd closed and reopened and a new watcher started within one loop
iteration (``same_iter_new``), the same with the old watcher object started
again (``same_iter_restart``), the same with the old watcher closed instead
of stopped (``same_iter_closed``), with loop iterations between the
close and the reopen (``across_iters``), with the old watcher left
active on the closed fd, as a program that closes a file before stopping
its watcher leaves it (``stale_watcher``: only the new watcher is new),
and with the old file kept open and ready through a dup (``dup_kept``, as
a forked child's copy would): the new file must not be reported ready
before it is (epoll registers the open file, so a registration of the old
one left behind would report it under the reused number).
"""
import ctypes
import ctypes.util
import json
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time

API = sys.argv[1] if len(sys.argv) > 1 else 'hub'
if API == 'gevent':
    import gevent
    from gevent import get_hub
    sleep = gevent.sleep
else:
    import gevent_c.hub as H
    get_hub = H.get_hub
    sleep = H.sleep

READ = 1
libc = ctypes.CDLL(ctypes.util.find_library('c') or None, use_errno=True)


class Unavailable(Exception):
    pass


class Src:
    """One pollable file: .fd, trigger() makes it readable, drain(),
    close() releases everything it opened."""
    def __init__(self):
        self.extra = []

    def trigger(self):
        pass

    def drain(self):
        pass

    def close(self):
        for fd in [self.fd] + self.extra:
            try:
                os.close(fd)
            except OSError:
                pass


class SockSrc(Src):
    def __init__(self):
        super().__init__()
        a, b = socket.socketpair()
        self.fd, self.peer = a.detach(), b.detach()
        self.extra = [self.peer]

    def trigger(self):
        os.write(self.peer, b'x')

    def drain(self):
        os.read(self.fd, 100)


class PipeSrc(Src):
    def __init__(self):
        super().__init__()
        self.fd, self.w = os.pipe()
        self.extra = [self.w]

    def trigger(self):
        os.write(self.w, b'x')

    def drain(self):
        os.read(self.fd, 100)


class EventfdSrc(Src):
    def __init__(self):
        super().__init__()
        if not hasattr(os, 'eventfd'):
            raise Unavailable('os.eventfd')
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def trigger(self):
        os.eventfd_write(self.fd, 1)

    def drain(self):
        os.eventfd_read(self.fd)


class SigsetT(ctypes.Structure):
    _fields_ = [('val', ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong))))]


class SignalfdSrc(Src):
    SIG = signal.SIGUSR1

    def __init__(self):
        super().__init__()
        if not hasattr(libc, 'signalfd'):
            raise Unavailable('signalfd')
        signal.pthread_sigmask(signal.SIG_BLOCK, {self.SIG})
        mask = SigsetT()
        bits = 8 * ctypes.sizeof(ctypes.c_ulong)
        mask.val[(self.SIG - 1) // bits] |= 1 << ((self.SIG - 1) % bits)
        fd = libc.signalfd(-1, ctypes.byref(mask), os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise Unavailable('signalfd: errno %d' % ctypes.get_errno())
        self.fd = fd

    def trigger(self):
        signal.pthread_kill(threading.get_ident(), self.SIG)

    def drain(self):
        os.read(self.fd, 128)


class Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


class Itimerspec(ctypes.Structure):
    _fields_ = [('it_interval', Timespec), ('it_value', Timespec)]


class TimerfdSrc(Src):
    def __init__(self):
        super().__init__()
        if hasattr(os, 'timerfd_create'):          # 3.13
            self.fd = os.timerfd_create(time.CLOCK_MONOTONIC,
                                        flags=os.TFD_NONBLOCK | os.TFD_CLOEXEC)
            self.py = True
            return
        self.py = False
        if not hasattr(libc, 'timerfd_create'):
            raise Unavailable('timerfd')
        fd = libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise Unavailable('timerfd_create: errno %d' % ctypes.get_errno())
        self.fd = fd

    def trigger(self):
        if self.py:
            os.timerfd_settime_ns(self.fd, initial=1000)
            return
        spec = Itimerspec(Timespec(0, 0), Timespec(0, 1000))
        if libc.timerfd_settime(self.fd, 0, ctypes.byref(spec), None) < 0:
            raise OSError(ctypes.get_errno(), 'timerfd_settime')

    def drain(self):
        os.read(self.fd, 8)


class EpollSrc(Src):
    def __init__(self):
        super().__init__()
        self.ep = select.epoll()
        self.fd = self.ep.fileno()
        self.r, self.w = os.pipe()
        self.ep.register(self.r, select.EPOLLIN)
        self.extra = [self.r, self.w]

    def trigger(self):
        os.write(self.w, b'x')

    def drain(self):
        os.read(self.r, 100)

    def close(self):
        self.ep.close()
        for fd in self.extra:
            os.close(fd)


class PidfdSrc(Src):
    def __init__(self):
        super().__init__()
        if not hasattr(os, 'pidfd_open'):
            raise Unavailable('os.pidfd_open')
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.read(r, 1)
            finally:
                os._exit(0)
        os.close(r)
        self.pid, self.w = pid, w
        try:
            self.fd = os.pidfd_open(pid)
        except OSError as e:
            self.trigger()
            os.waitpid(pid, 0)
            os.close(w)
            raise Unavailable('pidfd_open: %s' % e)
        self.extra = [w]

    def trigger(self):
        os.write(self.w, b'x')

    def close(self):
        super().close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


class MemfdSrc(Src):
    def __init__(self):
        super().__init__()
        if not hasattr(os, 'memfd_create'):
            raise Unavailable('os.memfd_create')
        self.fd = os.memfd_create('fd_reuse', os.MFD_CLOEXEC)


class TtySrc(Src):
    def __init__(self):
        super().__init__()
        self.fd, self.slave = os.openpty()
        os.set_blocking(self.fd, False)
        self.extra = [self.slave]

    def trigger(self):
        os.write(self.slave, b'x')

    def drain(self):
        try:
            os.read(self.fd, 100)
        except BlockingIOError:
            pass


class FileSrc(Src):
    def __init__(self):
        super().__init__()
        fd, path = tempfile.mkstemp()
        os.unlink(path)
        self.fd = fd


KINDS = {
    'socket': SockSrc, 'pipe': PipeSrc, 'eventfd': EventfdSrc,
    'signalfd': SignalfdSrc, 'timerfd': TimerfdSrc, 'epoll': EpollSrc,
    'pidfd': PidfdSrc, 'memfd': MemfdSrc, 'tty': TtySrc, 'file': FileSrc,
}
MODES = ['same_iter_new', 'same_iter_restart', 'same_iter_closed', 'across_iters',
         'stale_watcher', 'dup_kept']
# always ready (epoll refuses them), or ready through state the old file
# shares with the new one (a pending signal): no "not ready yet" to check
ALWAYS_READY = ('memfd', 'file', 'signalfd')


def wait_for(log, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not log and time.monotonic() < deadline:
        sleep(0.002)
    return bool(log)


def reopen_at(cls, fd):
    """A new file of the kind, at fd number `fd` (the lowest free number is
    reused when the numbers freed were the lowest; else dup2 puts it there)."""
    src = cls()
    if src.fd != fd:
        assert fd not in src.extra, (fd, src.extra)
        os.dup2(src.fd, fd)
        os.close(src.fd)
        src.fd = fd
    return src


def case(cls, mode, name=''):
    loop = get_hub().loop
    a = cls()
    fd = a.fd
    first = []
    w = loop.io(fd, READ)
    w.start(first.append, 1)
    a.trigger()
    if not wait_for(first):
        w.close()
        a.close()
        return 'FAIL: no event on the first file'
    # the native poll is armed now; in one greenlet, without a loop pass:
    keep = os.dup(fd) if mode == 'dup_kept' else None
    if mode == 'same_iter_closed':
        w.close()
    elif mode != 'stale_watcher':
        w.stop()
    a.close()
    if mode in ('across_iters', 'stale_watcher'):
        for _ in range(3):
            sleep(0.001)
    b = reopen_at(cls, fd)
    second = []
    try:
        if mode == 'same_iter_restart':
            w2 = w
        else:
            if mode not in ('same_iter_closed', 'stale_watcher'):
                w.close()
            w2 = loop.io(fd, READ)
        w2.start(second.append, 2)
        if keep is not None and name not in ALWAYS_READY:
            sleep(0.05)
            if second:
                w2.close()
                return 'FAIL: the new file at fd %d reported ready %d times before it was' % (
                    fd, len(second))
        b.trigger()
        ok = wait_for(second)
        w2.close()
    finally:
        if mode == 'stale_watcher':
            w.close()
        b.close()
        if keep is not None:
            os.close(keep)
    return 'ok' if ok else 'FAIL: no event on the new file at fd %d' % fd


def main():
    res = {}
    for name, cls in KINDS.items():
        for mode in MODES:
            key = '%s/%s' % (name, mode)
            try:
                res[key] = case(cls, mode, name)
            except Unavailable as e:
                res[key] = 'skip: %s unavailable' % e
            except Exception as e:   # reported per case, the others still run
                res[key] = 'FAIL: %s: %s' % (type(e).__name__, e)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
