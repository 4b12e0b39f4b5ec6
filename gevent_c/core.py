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
]


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
