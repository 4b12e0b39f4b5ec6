"""gevent's loop interface on gevent_c's C loop: the parts bridged in Python.

Point gevent at it with ``GEVENT_LOOP=gevent_c.gevent_loop.loop``.

``gevent_c.core.loop`` already provides almost everything gevent's hub,
sockets, os, signal and subprocess modules call on a loop.  This subclass
adds what can be added without changing C semantics; each item says what
the C loop should eventually provide itself (see docs/compat.md), after
which this module can shrink to an alias.

- ``loop(flags=...)``: gevent passes ``GEVENT_BACKEND`` (libev backend
  names such as 'select' or 'poll') as *flags*; libuv has one backend, so,
  like gevent's libuv loop, we drop backend names we do not support
  instead of raising, with a RuntimeWarning.
- ``debug()``: gevent's hub and test timeouts call it when present to
  describe the loop; an empty list.
- zope.interface declarations: ``ILoop`` on the loop, ``ICallback`` on
  callback objects and ``IWatcher`` on watchers, so that
  ``verifyObject(ILoop, hub.loop)`` succeeds.  zope.interface records
  declarations for C types in its own registry, so this covers
  ``gevent_c.core.loop`` too once this module is imported.
"""
import warnings

from gevent_c import core as _core
# gevent.core copies the globals and __all__ of the loop class's module, so
# this module offers everything gevent_c.core does (READ, WRITE,
# supported_backends(), the watcher types, ...), with our loop subclass.
from gevent_c.core import *  # pylint:disable=wildcard-import,unused-wildcard-import

__all__ = list(_core.__all__)
if 'loop' not in __all__:
    __all__.append('loop')

# libev's backend names (gevent.libev.corecext); the ones libuv lacks are
# accepted and ignored, as gevent's own libuv loop ignores flags.
_LIBEV_BACKENDS = frozenset(
    ['select', 'poll', 'epoll', 'kqueue', 'devpoll', 'port', 'linuxaio', 'iouring'])


def _filter_flags(flags):
    if not isinstance(flags, str):
        return flags
    supported = set(_core.supported_backends())
    words = [x.strip() for x in flags.split(',')]
    dropped = [f for f in words if f.lower() in _LIBEV_BACKENDS and f.lower() not in supported]
    if dropped:
        # not silent: the program asked for something it does not get
        warnings.warn('libuv has no %s backend; using %s' % (
            ', '.join(repr(f) for f in dropped), ', '.join(sorted(supported))),
            RuntimeWarning, stacklevel=3)
    kept = [f for f in words if f and f not in dropped]
    return ','.join(kept) or None


class loop(_core.loop):
    __slots__ = ()

    def __new__(cls, flags=None, default=None):
        return _core.loop.__new__(cls, _filter_flags(flags), default)

    def __init__(self, flags=None, default=None):  # pylint:disable=unused-argument
        # everything happens in the C type's __new__
        pass


def _declare_interfaces():
    try:
        from zope.interface import classImplements
        from gevent._interfaces import ILoop, IWatcher, ICallback
    except ImportError:  # gevent (or zope.interface) not installed
        return
    for cls, iface in ((_core.loop, ILoop), (loop, ILoop),
                       (_core.callback, ICallback), (_core.watcher, IWatcher)):
        try:
            classImplements(cls, iface)
        except TypeError:  # pragma: no cover
            pass


_declare_interfaces()
