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
        if len(self.args) == 3:
            return '%s(%r)' % (type(self).__name__, self.args[0])
        return Exception.__repr__(self)

    def __str__(self):
        if len(self.args) != 3:
            return Exception.__str__(self)
        lines = [str(self.args[0]), '\tHub: %r' % (self.args[1],)]
        handles = self.args[2]
        if handles:
            lines.append('\tHandles:')
            lines.extend('\t\t' + str(h) for h in handles)
        return '\n'.join(lines)


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
