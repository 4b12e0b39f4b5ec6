"""Exceptions raised by gevent_c (the names gevent.exceptions has)."""
from greenlet import GreenletExit

__all__ = [
    'GreenletExit', 'LoopExit', 'BlockingSwitchOutError', 'InvalidSwitchError',
    'ConcurrentObjectUseError', 'InvalidThreadUseError', 'HubDestroyed',
]


class LoopExit(Exception):
    """The loop ran out of work while a greenlet waits on the hub.

    Raised by the hub as ``LoopExit(message, hub, handles)``; ``hub`` is
    then the hub and the third argument lists the loop's live handles.
    """

    @property
    def hub(self):
        return self.args[1] if len(self.args) == 3 else None

    def __repr__(self):
        # gevent's: the message, the hub, and the handles pretty-printed as
        # a list (each handle's description as it is, without quotes)
        if len(self.args) != 3:
            return Exception.__repr__(self)
        import pprint
        handles = self.args[2]
        if isinstance(handles, (list, tuple)):
            handles = [_Shown(h) if isinstance(h, str) else h for h in handles]
        return '%s\n\tHub: %s\n\tHandles:\n%s' % (
            self.args[0], self.args[1], pprint.pformat(handles))

    def __str__(self):
        # the same text as repr (gevent's); a LoopExit made with a message
        # alone reads as the message (gevent's reads as its repr)
        if len(self.args) != 3:
            return Exception.__str__(self)
        return repr(self)


class _Shown(str):
    # a handle's description, which pprint shows without quotes
    def __repr__(self):
        return str(self)


class BlockingSwitchOutError(AssertionError):
    """A blocking call was made inside the hub (a callback)."""


class InvalidSwitchError(AssertionError):
    """The hub switched into a waiting greenlet with an unexpected value."""


class ConcurrentObjectUseError(AssertionError):
    """A second greenlet called get() on a Waiter already in use."""


class InvalidThreadUseError(RuntimeError):
    """An object bound to one thread's hub was used from another thread."""


class HubDestroyed(GreenletExit):
    """Internal: thrown into the hub by Hub.destroy() to unwind it."""

    def __init__(self, destroy_loop):
        GreenletExit.__init__(self, destroy_loop)
        self.destroy_loop = destroy_loop
