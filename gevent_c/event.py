"""gevent_c.event: ``Event`` and ``AsyncResult`` (docs/semantics.md,
'Event, AsyncResult and Timeout').

Both classes implement the wait protocol (``rawlink``/``unlink``) used by
``Hub.join(event=)``, ``iwait``/``wait`` and the thread pool.

- The hub is picked up lazily: at the first blocking wait (``get_hub()``) or
  the first notification (``_get_hub()``, which never creates one).
- Notifications run in the hub, queued with ``loop.run_callback``. If no hub
  exists when a notification is due, the links are called synchronously.
- Links are one-shot: each is removed just before it is called. A link that
  raises is reported with ``hub.handle_error((link, self), *sys.exc_info())``.
- Blocking waits use a ``Waiter``: its bound ``switch`` is linked, and a
  normal (referenced) ``loop.timer`` provides the timeout. Both are undone
  however the wait ends.
"""
import sys

from gevent_c._hub import Waiter, get_hub, get_hub_if_exists as _get_hub
from gevent_c.exceptions import InvalidSwitchError
from gevent_c.timeout import Timeout

__all__ = ['Event', 'AsyncResult', 'Timeout']


class _Sentinel(object):
    __slots__ = ('_name',)

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return self._name


_NONE = _Sentinel('<_NONE>')              # "no value stored"
_TIMED_OUT = _Sentinel('<timed out>')     # what the timeout timer switches in


class _Linkable(object):
    """The linking and notification machinery shared by Event and AsyncResult.

    ``_links`` holds the registered callbacks, in registration order.
    ``_notifier`` is the queued notification callback (or True while links
    are being called synchronously); it is None when none is due.
    ``_notifying`` is the list of links still to be called by the running
    notification (reversed, so the next one is popped from the end).
    """
    __slots__ = ('hub', '_links', '_notifier', '_notifying', '__weakref__')

    def __init__(self):
        self.hub = None
        self._links = []
        self._notifier = None
        self._notifying = None

    def ready(self):
        raise NotImplementedError

    def linkcount(self):
        """The number of registered links (for tests)."""
        pending = self._notifying
        return len(self._links) + (len(pending) if pending else 0)

    def rawlink(self, callback):
        """Call ``callback(self)`` in the hub once this object is ready.

        The link is one-shot: it is removed just before it is called.
        """
        if not callable(callback):
            raise TypeError('Expected callable: %r' % (callback,))
        self._links.append(callback)
        if self._notifier is None and self.ready():
            self._schedule()

    def unlink(self, callback):
        """Remove a link made with ``rawlink``. Unknown callbacks are ignored."""
        try:
            self._links.remove(callback)
        except ValueError:
            pending = self._notifying
            if pending:
                try:
                    pending.remove(callback)
                except ValueError:
                    pass
        if not self._links and self._notifying is None:
            notifier = self._notifier
            if notifier is not None:
                # Nothing left to notify: drop the queued callback (it would
                # find no links) and the reference cycle through it.
                self._notifier = None
                notifier.stop()

    def _schedule(self):
        # Queue the notification of the current links in the hub.
        hub = self.hub
        if hub is None or hub.loop is None:
            hub = self.hub = _get_hub()
        if hub is not None:
            self._notifier = hub.loop.run_callback(self._notify_links)
        else:
            # No hub, so no greenlet can be blocked on us: call the links now.
            self._notifier = True
            self._notify_links()

    def _notify_links(self):
        links = self._links
        if not links:
            self._notifier = None
            return
        # Links registered from now on belong to the next notification.
        self._links = []
        links.reverse()
        self._notifying = links
        try:
            while links:
                link = links.pop()
                try:
                    link(self)
                except:  # noqa: E722 -- we are in the hub; nothing may escape
                    self._report_error(link)
        finally:
            self._notifying = None
            self._notifier = None
            if links:
                # Something escaped (handle_error itself failed): keep the
                # links that were not called.
                links.reverse()
                self._links[:0] = links
        if self._links and self.ready():
            self._schedule()

    def _report_error(self, link):
        hub = self.hub
        if hub is None:
            hub = _get_hub()
        if hub is not None:
            hub.handle_error((link, self), *sys.exc_info())
        else:
            import traceback
            traceback.print_exc()

    def _wait_core(self, timeout):
        """Block until notified (True) or until ``timeout`` expires (False)."""
        hub = self.hub = get_hub()
        waiter = Waiter(hub)
        switch = waiter.switch
        # Callers checked that we are not ready, so linking needs no notify.
        self._links.append(switch)
        timer = result = None
        try:
            if timeout is not None:
                timer = hub.loop.timer(timeout)
                timer.start(switch, _TIMED_OUT)
            result = waiter.get()
        finally:
            if timer is not None:
                timer.close()
            if result is not self:
                # When notified, the link was already removed before the call.
                self.unlink(switch)
        if result is self:
            return True
        if result is _TIMED_OUT:
            return False
        raise InvalidSwitchError('Invalid switch into %s.wait(): %r'
                                 % (type(self).__name__, result))


class Event(_Linkable):
    """A flag that greenlets can wait for.

    ``set()`` sets the flag and wakes every waiter, ``clear()`` resets it.
    Works between greenlets of one thread only.
    """
    __slots__ = ('_flag',)

    def __init__(self):
        _Linkable.__init__(self)
        self._flag = False

    def __str__(self):
        return '<%s %s _links[%d]>' % (
            type(self).__name__, 'set' if self._flag else 'clear', self.linkcount())

    def is_set(self):
        """Return the flag."""
        return self._flag

    isSet = is_set
    ready = is_set

    def set(self):
        """Set the flag; the waiters and links are notified in the hub."""
        self._flag = True
        if self._links and self._notifier is None:
            self._schedule()

    def clear(self):
        """Reset the flag."""
        self._flag = False

    def wait(self, timeout=None):
        """Block until the flag is set.

        Return True at once if it is set. Otherwise return True once
        ``set()`` has been called (even if the flag was cleared again before
        this greenlet ran), or False when ``timeout`` expires.
        """
        if self._flag:
            return True
        return self._wait_core(timeout)


class AsyncResult(_Linkable):
    """A one-time event that stores a value or an exception.

    Setting it again overwrites the result: the last one wins.
    """
    __slots__ = ('_value', '_exc_info')

    def __init__(self):
        _Linkable.__init__(self)
        self._value = _NONE
        self._exc_info = ()

    def __str__(self):
        text = '<%s ' % (type(self).__name__,)
        if self._exc_info:
            text += 'value=None exception=%r ' % (self._exc_info[1],)
        elif self._value is not _NONE:
            text += 'value=%r ' % (self._value,)
        else:
            text += 'unset '
        return text + ' _links[%d]>' % (self.linkcount(),)

    def ready(self):
        """True once a value or an exception is stored."""
        return self._value is not _NONE or bool(self._exc_info)

    def successful(self):
        """True if a value (not an exception) is stored."""
        return self._value is not _NONE

    @property
    def value(self):
        """The stored value, or None."""
        value = self._value
        return None if value is _NONE else value

    @property
    def exception(self):
        """The stored exception instance, or None."""
        exc_info = self._exc_info
        return exc_info[1] if exc_info else None

    @property
    def exc_info(self):
        """``(type, value, traceback)`` of the stored exception, or ``()``."""
        return self._exc_info

    def set(self, value=None):
        """Store ``value`` and wake the waiters."""
        self._value = value
        self._exc_info = ()
        if self._links and self._notifier is None:
            self._schedule()

    def set_exception(self, exception, exc_info=None):
        """Store ``exception`` and wake the waiters.

        ``exc_info``, a ``(type, value, traceback)`` tuple, keeps the original
        traceback for the ``get()`` that re-raises it.
        """
        if exc_info:
            self._exc_info = (exc_info[0], exc_info[1], exc_info[2])
        else:
            if isinstance(exception, type):
                exception = exception()
            self._exc_info = (type(exception), exception, None)
        self._value = _NONE
        if self._links and self._notifier is None:
            self._schedule()

    def get(self, block=True, timeout=None):
        """Return the value, or raise the stored exception.

        If not ready: block until it is (or until ``timeout``, then raise
        ``Timeout(timeout)``). With ``block=False``, raise ``Timeout()`` at once.
        """
        if self._value is _NONE and not self._exc_info:
            if not block:
                raise Timeout()
            if not self._wait_core(timeout):
                raise Timeout(timeout)
        if self._value is not _NONE:
            return self._value
        exc_info = self._exc_info
        raise exc_info[1].with_traceback(exc_info[2])

    def get_nowait(self):
        """``get(block=False)``."""
        return self.get(block=False)

    def wait(self, timeout=None):
        """Block until ready, or until ``timeout``; return ``value`` (None on
        failure or timeout). Never raises the stored exception."""
        if self._value is _NONE and not self._exc_info:
            self._wait_core(timeout)
        return self.value

    def __call__(self, source):
        """The link protocol: copy ``source``'s outcome into this result."""
        if source.successful():
            self.set(source.value)
        else:
            self.set_exception(source.exception, getattr(source, 'exc_info', None))

    # concurrent.futures-style aliases (gevent HEAD)
    def result(self, timeout=None):
        return self.get(timeout=timeout)

    set_result = set

    def done(self):
        return self.ready()

    def cancel(self):
        return False

    def cancelled(self):
        return False
