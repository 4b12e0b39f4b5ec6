"""gevent_c.core: the event loop on libuv and its watchers."""
import time as _time

from gevent_c._hub import (  # noqa: F401
    loop, callback, watcher, timer, io, signal, child, idle, prepare, check, fork,
    async_, stat,
    READ, WRITE, READWRITE, MAXPRI, MINPRI,
    get_version, get_header_version,
)

__all__ = [
    'loop', 'callback', 'watcher', 'timer', 'io', 'signal', 'child', 'idle',
    'prepare', 'check', 'fork', 'async_', 'stat', 'READ', 'WRITE', 'READWRITE',
    'MAXPRI', 'MINPRI', 'EVENTS', 'get_version', 'get_header_version',
    'supported_backends', 'recommended_backends', 'time',
    'BACKEND_SELECT', 'BACKEND_POLL', 'BACKEND_EPOLL', 'BACKEND_KQUEUE',
    'BACKEND_DEVPOLL', 'BACKEND_PORT', 'BACKEND_LINUXAIO', 'BACKEND_IOURING',
]

# libev's backend numbers (EVBACKEND_*), as gevent's libev core exports
# them; loop.backend_int is the one in use (libuv polls with epoll here).
BACKEND_SELECT = 1
BACKEND_POLL = 2
BACKEND_EPOLL = 4
BACKEND_KQUEUE = 8
BACKEND_DEVPOLL = 16
BACKEND_PORT = 32
BACKEND_LINUXAIO = 64
BACKEND_IOURING = 128


class _EventsType(object):
    """Placeholder for the io watcher's events in a callback's args."""

    def __repr__(self):
        return 'gevent_c.core.EVENTS'

    __str__ = __repr__


EVENTS = _EventsType()


def supported_backends():
    return ['epoll']


def recommended_backends():
    return ['epoll']


def time():
    """Wall-clock seconds (libev's ev_time)."""
    return _time.time()


def _events_to_str(events):
    names = []
    for flag, name in ((READ, 'READ'), (WRITE, 'WRITE')):
        if events & flag:
            names.append(name)
            events &= ~flag
    if events:
        names.append(hex(events))
    return '|'.join(names)


def _declare_gevent_interfaces():
    """When gevent itself runs on this loop (GEVENT_LOOP=gevent_c.core.loop),
    declare its ILoop/IWatcher/ICallback interfaces on our classes.  gevent
    is never imported here: only when it is already in use."""
    import sys
    if 'gevent' not in sys.modules:
        return
    try:
        from zope.interface import classImplements
        from gevent._interfaces import ILoop, IWatcher, ICallback
    except ImportError:
        return
    for cls, iface in ((loop, ILoop), (callback, ICallback), (watcher, IWatcher)):
        try:
            classImplements(cls, iface)
        except TypeError:
            pass


_declare_gevent_interfaces()
