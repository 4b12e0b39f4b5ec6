"""gevent_c.hub: drop-in for ``gevent.hub``.

The hub is a greenlet (implemented in C) that runs a libuv event loop;
there is one per OS thread.  Importing this module creates neither a hub
nor a loop: the first ``get_hub()`` does.
"""
from _thread import get_ident
from _thread import _local as threadlocal

from greenlet import greenlet, getcurrent, GreenletExit

from gevent_c import _hub
from gevent_c._hub import (  # noqa: F401
    Hub, Waiter, get_hub, get_hub_class, set_hub, get_hub_if_exists,
    sleep, spawn_raw, kill,
)
from gevent_c._hub_local import _threadlocal  # noqa: F401
from gevent_c._config import _import, config, resolver_config, _resolvers  # noqa: F401
from gevent_c.exceptions import (  # noqa: F401
    LoopExit, BlockingSwitchOutError, InvalidSwitchError, ConcurrentObjectUseError,
    InvalidThreadUseError, HubDestroyed,
)

__all__ = ['getcurrent', 'GreenletExit', 'spawn_raw', 'sleep', 'kill', 'signal',
           'reinit', 'get_hub', 'Hub', 'Waiter']

PY3 = True
string_types = (str,)
integer_types = (int,)


def _main_thread_ident():
    import threading
    return threading.main_thread().ident


MAIN_THREAD = MAIN_THREAD_IDENT = _main_thread_ident()
get_ident = get_ident


class _NONE(object):
    """A sentinel (gevent 1.0's ``_NONE``)."""
    __slots__ = ()

    def __repr__(self):
        return '<_NONE>'


_NONE = _NONE()
del _hub
_get_hub = get_hub_if_exists


def signal(signalnum, handler, *args, **kwargs):
    """Not in gevent_c yet: arrives with the signal watcher (issue 3/4)."""
    raise NotImplementedError('gevent_c.hub.signal is not implemented yet')


def reinit(hub=None):
    """Not in gevent_c yet: arrives with loop.reinit() (issue 3/4)."""
    raise NotImplementedError('gevent_c.hub.reinit is not implemented yet')
