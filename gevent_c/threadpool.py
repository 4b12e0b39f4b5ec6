"""gevent_c.threadpool: a pool of native worker threads serving one hub.

The hand-off (queue, wake-ups, result delivery) is in C
(``gevent_c._hub.ThreadPoolBase``); this module adds the convenience API.
"""
import sys
from _thread import get_ident

from gevent_c._hub import ThreadPoolBase, Waiter
from gevent_c.event import AsyncResult

__all__ = ['ThreadPool']


class _Worker(str):
    """A worker thread in an error report (shown as is, without quotes)."""
    __slots__ = ()

    def __repr__(self):
        return str(self)


class ThreadPool(ThreadPoolBase):
    """ThreadPool(maxsize, hub=None, idle_task_timeout=-1)

    ``spawn(func, *args, **kwargs)`` runs ``func`` in a worker thread and
    returns an :class:`gevent_c.event.AsyncResult`; while ``maxsize`` tasks
    are outstanding it blocks the calling greenlet (not the thread).  Worker
    threads start on demand.  Only the hub's thread may use the pool.
    """

    def _wait_slot(self):
        waiter = Waiter(self.hub)
        self._slot_waiters.append(waiter.switch)
        try:
            waiter.get()
        finally:
            try:
                self._slot_waiters.remove(waiter.switch)
            except ValueError:
                pass

    def __repr__(self):
        # the hub's repr shows its pool: name the hub briefly, no recursion
        hub = self.hub
        if hub is None:     # __init__ not called, or it failed
            return '<%s at 0x%x (not initialised)>' % (type(self).__name__, id(self))
        return '<%s at 0x%x tasks=%d size=%d maxsize=%d hub=<%s at 0x%x>>' % (
            type(self).__name__, id(self), len(self), self.size, self.maxsize,
            type(hub).__name__, id(hub))

    def __bool__(self):
        return len(self) > 0

    def _error_context(self, ident, func):
        """The context of a failed task's error report (hub.handle_error),
        gevent's: (the worker, the function)."""
        hub = self.hub
        hub_text = '<missing>' if hub is None else '<%s at 0x%x thread_ident=0x%x>' % (
            type(hub).__name__, id(hub), hub.thread_ident or 0)
        return (_Worker('<ThreadPoolWorker thread_ident=0x%x threadpool-hub=%s>'
                        % (ident, hub_text)), func)

    def join(self):
        """Wait (cooperatively) until no task is outstanding."""
        while len(self):
            waiter = Waiter(self.hub)
            self._join_waiters.append(waiter.switch)
            try:
                waiter.get()
            finally:
                try:
                    self._join_waiters.remove(waiter.switch)
                except ValueError:
                    pass

    def _in_worker(self):
        # a worker thread of this pool (or any other thread): its hub, if
        # any, is not ours, so blocking on the pool would deadlock
        return get_ident() != self._hub_thread_ident

    def apply(self, func, args=None, kwds=None):
        """``func(*args, **kwds)`` in a worker; returns its result or raises."""
        if self._in_worker():
            return func(*(args or ()), **(kwds or {}))
        return self.spawn(func, *(args or ()), **(kwds or {})).get()

    def apply_e(self, expected_errors, function, args=None, kwargs=None):
        """Like apply(), but errors matching ``expected_errors`` are re-raised
        without being reported through the hub's handle_error (gevent 1.0)."""
        if self._in_worker():
            return function(*(args or ()), **(kwargs or {}))
        while True:
            result = self._submit(function, tuple(args or ()), dict(kwargs or {}),
                                  expected_errors)
            if result is not None:
                return result.get()
            self._wait_slot()

    def apply_cb(self, func, args=None, kwds=None, callback=None):
        result = self.apply(func, args, kwds)
        if callback is not None:
            callback(result)
        return result

    def apply_async(self, func, args=None, kwds=None, callback=None):
        """Never blocks, even when the pool is full; returns an AsyncResult."""
        if self._in_worker():
            result = AsyncResult()
            try:
                result.set(func(*(args or ()), **(kwds or {})))
            except Exception as ex:  # noqa: BLE001  (delivered to the caller)
                result.set_exception(ex)
            if callback is not None and result.successful():
                callback(result.value)
            return result
        outer = AsyncResult()
        hub = self.hub

        def start():
            inner = self.spawn(func, *(args or ()), **(kwds or {}))
            inner.rawlink(finish)

        def finish(inner):
            if inner.successful():
                outer.set(inner.value)
                if callback is not None:
                    callback(inner.value)
            else:
                outer.set_exception(inner.exception, getattr(inner, 'exc_info', None))

        if len(self) < self.maxsize:
            start()
        else:
            from gevent_c._hub import spawn_raw
            spawn_raw(start)
        del hub
        return outer

    def map(self, func, iterable):
        """[func(x) for x in iterable], in worker threads, in input order.
        The earliest failing input's exception is raised."""
        results = [self.spawn(func, item) for item in iterable]
        return [r.get() for r in results]

    def map_cb(self, func, iterable, callback=None):
        result = self.map(func, iterable)
        if callback is not None:
            callback(result)
        return result

    def map_async(self, func, iterable, callback=None):
        """map() in a new greenlet; returns an AsyncResult at once."""
        from gevent_c._hub import spawn_raw
        result = AsyncResult()

        def run():
            try:
                value = self.map(func, iterable)
            except BaseException as ex:  # noqa: BLE001  (delivered to the caller)
                result.set_exception(ex, sys.exc_info())
                return
            result.set(value)
            if callback is not None:
                callback(value)

        spawn_raw(run)
        return result

    def imap(self, func, *iterables, **kwargs):
        """Results in input order, as they become available."""
        maxsize = kwargs.pop('maxsize', None)
        if kwargs:
            raise TypeError('unexpected keyword arguments: %r' % sorted(kwargs))
        limit = maxsize or max(self.maxsize, 1)
        pending = []
        for args in zip(*iterables):
            pending.append(self.spawn(func, *args))
            if len(pending) >= limit:
                yield pending.pop(0).get()
        while pending:
            yield pending.pop(0).get()

    def imap_unordered(self, func, *iterables, **kwargs):
        """Results in completion order."""
        from gevent_c._wait import iwait
        maxsize = kwargs.pop('maxsize', None)
        if kwargs:
            raise TypeError('unexpected keyword arguments: %r' % sorted(kwargs))
        results = [self.spawn(func, *args) for args in zip(*iterables)]
        del maxsize
        for r in iwait(results):
            yield r.get()
