"""gevent_c.timeout: the minimal ``Timeout`` exception (docs/semantics.md,
'Event, AsyncResult and Timeout').

Only the exception itself is provided: ``AsyncResult.get`` raises it. The
scheduling API of gevent's Timeout (``start``, ``cancel``, ``start_new``, use as
a context manager) is not part of gevent_c yet, so those names are absent.
"""

__all__ = ['Timeout']


class Timeout(BaseException):
    """Raised when a blocking operation did not finish in time.

    ``Timeout(seconds=None, exception=None)``. It derives from BaseException,
    as gevent's does, so that a bare ``except Exception`` in user code does not
    swallow it.
    """

    def __init__(self, seconds=None, exception=None):
        BaseException.__init__(self)
        self.seconds = seconds
        self.exception = exception

    def __str__(self):
        seconds = self.seconds
        if seconds is None:
            return ''
        text = '%s second%s' % (seconds, '' if seconds == 1 else 's')
        exception = self.exception
        if exception is None:
            return text
        if exception is False:
            return text + ' (silent)'
        return '%s: %s' % (text, exception)

    def __repr__(self):
        exception = self.exception
        return '<%s at %#x seconds=%s%s>' % (
            type(self).__name__, id(self), self.seconds,
            '' if exception is None else ' exception=%r' % (exception,))
