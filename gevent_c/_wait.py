"""``iwait``, ``wait`` and ``linkproxy`` (docs/semantics.md,
'iwait and wait').

They are re-exported by ``gevent_c.hub``. Objects follow the wait protocol:
``rawlink(cb)`` makes ``cb(obj)`` be called in the hub once ``obj`` is ready,
and ``unlink(cb)`` cancels that.
"""
from collections import deque

from gevent_c._hub import Waiter, get_hub

__all__ = ['iwait', 'wait', 'linkproxy']

_TIMED_OUT = object()


class _Collector(object):
    """The link given to every waited-for object.

    It queues ready objects (several may become ready before the consumer
    runs again) and wakes the consumer if it is blocked. It does not refer to
    the iterator, so dropping an iterator that was not exhausted frees it
    (and its ``__del__`` unlinks) at once.
    """
    __slots__ = ('items', 'waiter')

    def __init__(self, waiter):
        self.items = deque()
        self.waiter = waiter

    def __call__(self, obj):
        self.items.append(obj)
        waiter = self.waiter
        if waiter.greenlet is not None:
            waiter.switch(None)


class _WaitIterator(object):
    """The iterator returned by ``iwait``; also a context manager."""
    __slots__ = ('_hub', '_objects', '_timeout', '_count', '_collector', '_timer',
                 '_state')

    # _state: 0 not begun, 1 linked, 2 finished (cleaned up)

    def __init__(self, objects, hub, timeout, count):
        self._state = 2         # nothing to clean up if len() fails
        size = len(objects)
        self._hub = hub
        self._objects = tuple(objects)
        self._timeout = timeout
        self._count = size if count is None else min(count, size)
        self._collector = None
        self._timer = None
        self._state = 0

    def _begin(self):
        self._state = 1
        collector = self._collector = _Collector(Waiter(self._hub))
        # Link to every object even when fewer are wanted: any of them may be
        # the first to become ready.
        for obj in self._objects:
            obj.rawlink(collector)
        if self._timeout is not None:
            timer = self._timer = self._hub.loop.timer(self._timeout)
            timer.start(collector, _TIMED_OUT)

    def __iter__(self):
        return self

    def __next__(self):
        if self._state != 1:
            if self._state:
                raise StopIteration
            if self._count <= 0:
                self._cleanup()
                raise StopIteration
            try:
                self._begin()
            except:  # noqa: E722 -- e.g. an object without rawlink
                self._cleanup()
                raise
        collector = self._collector
        items = collector.items
        try:
            waiter = collector.waiter
            while not items:
                waiter.get()
                waiter.clear()
        except:  # noqa: E722 -- clean up whatever interrupted the wait
            self._cleanup()
            raise
        item = items.popleft()
        if item is _TIMED_OUT:
            self._cleanup()
            raise StopIteration
        self._count -= 1
        if self._count <= 0:
            self._cleanup()
        return item

    next = __next__

    def _cleanup(self):
        if self._state == 2:
            return
        begun = self._state == 1
        self._state = 2
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.close()
        collector = self._collector
        objects = self._objects
        self._objects = ()
        if begun and collector is not None:
            for obj in objects:
                unlink = getattr(obj, 'unlink', None)
                if unlink is not None:
                    try:
                        unlink(collector)
                    except Exception:  # pragma: no cover -- a faulty unlink
                        import traceback
                        traceback.print_exc()

    def close(self):
        """Stop waiting: unlink from every object and stop the timer."""
        self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, typ, value, tb):
        self._cleanup()

    def __del__(self):
        if self._state == 1:
            self._cleanup()


def iwait(objects, timeout=None, count=None):
    """Yield each of ``objects`` as it becomes ready, in readiness order.

    Stops after all of them, after ``count`` of them, or (silently) when
    ``timeout`` expires. ``objects`` must support ``len()``. Use the result
    in a ``with`` block to unlink at once when consuming only part of it.
    ``iwait(None, timeout)`` returns ``[hub.join(timeout)]``.
    """
    hub = get_hub()
    if objects is None:
        return [hub.join(timeout=timeout)]
    return _WaitIterator(objects, hub, timeout, count)


def wait(objects=None, timeout=None, count=None):
    """Wait for ``objects`` (all, or ``count`` of them) or for ``timeout``.

    Returns the list of ready objects in readiness order. With ``objects``
    None, wait for the loop to run out of work: ``hub.join(timeout)``.
    """
    if objects is None:
        return get_hub().join(timeout=timeout)
    return list(iwait(objects, timeout, count))


class linkproxy(object):
    """``linkproxy(callback, obj)``: calling it (with any arguments) calls
    ``callback(obj)`` once and drops both references."""
    __slots__ = ('callback', 'obj')

    def __init__(self, callback, obj):
        self.callback = callback
        self.obj = obj

    def __call__(self, *args):
        callback = self.callback
        obj = self.obj
        self.callback = self.obj = None
        if callback is not None:
            callback(obj)
