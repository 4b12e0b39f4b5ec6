"""gevent_c.hub: drop-in for ``gevent.hub``.

The hub is a greenlet (implemented in C) that runs a libuv event loop;
there is one per OS thread.  Importing this module creates neither a hub
nor a loop: the first ``get_hub()`` does.
"""
import sys
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
from gevent_c._wait import iwait, wait, linkproxy  # noqa: F401
from gevent_c.exceptions import (  # noqa: F401
    LoopExit, BlockingSwitchOutError, InvalidSwitchError, ConcurrentObjectUseError,
    InvalidThreadUseError, HubDestroyed,
)

__all__ = ['getcurrent', 'GreenletExit', 'spawn_raw', 'sleep', 'kill', 'signal',
           'reinit', 'get_hub', 'Hub', 'Waiter']

PY3 = True
string_types = (str,)
integer_types = (int,)


# The interpreter's main thread, asked of the interpreter: threading's
# answer changes when gevent's monkey.patch_all() has run first.
MAIN_THREAD = MAIN_THREAD_IDENT = _hub.main_thread_ident()
get_ident = get_ident


class _NONE(object):
    """A sentinel (gevent 1.0's ``_NONE``)."""
    __slots__ = ()

    def __repr__(self):
        return '<_NONE>'


_NONE = _NONE()
del _hub
_get_hub = get_hub_if_exists



def idle(priority=0):
    """Block the current greenlet until the loop is idle."""
    hub = get_hub()
    watcher = hub.loop.idle()
    if priority:
        watcher.priority = priority
    try:
        hub.wait(watcher)
    finally:
        watcher.close()


class signal(object):
    """signal(signalnum, handler, *args, **kwargs): call ``handler`` in a new
    greenlet each time ``signalnum`` is delivered.

    The watcher is unreferenced: it never keeps the loop alive.  An exception
    from the handler is reported with ``hub.handle_error(None, ...)``, so it
    is raised in the main greenlet.
    """

    greenlet_class = greenlet

    def __init__(self, signalnum, handler, *args, **kwargs):
        if not callable(handler):
            raise TypeError('signal handler must be callable.')
        self.hub = get_hub()
        self.watcher = self.hub.loop.signal(signalnum, ref=False)
        self.handler = handler
        self.args = args
        self.kwargs = kwargs
        self.watcher.start(self._start)

    @property
    def ref(self):
        return self.watcher.ref

    @ref.setter
    def ref(self, value):
        self.watcher.ref = value

    def cancel(self):
        """Stop and close the watcher and drop the references.  Idempotent."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher.close()
            self.watcher = None
            self.handler = self.args = self.kwargs = None

    def _start(self):
        # runs in the hub
        try:
            self.greenlet_class(self.handle).switch()
        except:  # noqa: E722  (everything goes to the hub, like gevent)
            self.hub.handle_error(None, *sys.exc_info())

    def handle(self):
        try:
            self.handler(*self.args, **self.kwargs)
        except:  # noqa: E722
            self.hub.handle_error(None, *sys.exc_info())


def reinit(hub=None):
    """Prepare ``hub`` (default: this thread's, if any) for use in a forked
    child: reinitialise its loop, then let its threadpool and resolver
    recover (their ``_on_fork``).  Call it in the child right after fork()."""
    if hub is None:
        hub = _get_hub()
    if hub is None:
        return
    hub.loop.reinit()
    for obj in (hub._threadpool, hub._resolver):
        on_fork = getattr(obj, '_on_fork', None)
        if on_fork is not None:
            on_fork()

