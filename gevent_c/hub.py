"""gevent_c.hub: drop-in for ``gevent.hub``.

The hub is a greenlet (implemented in C) that runs a libuv event loop;
there is one per OS thread.  Importing this module creates neither a hub
nor a loop: the first ``get_hub()`` does.
"""
import sys
from _thread import get_ident
from _thread import _local as threadlocal

from greenlet import greenlet, getcurrent, GreenletExit
from greenlet import error as greenlet_error

from gevent_c._hub import _main_thread_ident, _get_saved_loop, _set_saved_loop
from gevent_c._hub import _saved_loop_owned, _thread_alive
from gevent_c._hub import (  # noqa: F401
    HubCore, Waiter, get_hub, get_hub_class, set_hub, get_hub_if_exists,
    set_default_hub_class, sleep, spawn_raw, kill,
)
from gevent_c._hub_local import _threadlocal  # noqa: F401
from gevent_c._config import (  # noqa: F401
    _import, config, resolver_config, _resolvers, _split, _loops,
    DEFAULT_LOOP, DEFAULT_RESOLVER, DEFAULT_THREADPOOL, settings,
)
from gevent_c._wait import iwait, wait, linkproxy  # noqa: F401
from gevent_c._monitor import PeriodicMonitoringThread
from gevent_c.exceptions import (  # noqa: F401
    LoopExit, BlockingSwitchOutError, InvalidSwitchError, ConcurrentObjectUseError,
    InvalidThreadUseError, HubDestroyed,
)


def get_loop():
    """The loop this thread's next hub will use: the one kept by
    ``Hub.destroy(destroy_loop=False)`` or given to ``set_loop``, else None."""
    return _get_saved_loop()


def set_loop(loop):
    """Make ``loop`` (or None) the loop this thread's next hub uses.  The
    loop is lent, not given: that hub never destroys it by itself."""
    _set_saved_loop(loop)


__all__ = ['getcurrent', 'GreenletExit', 'spawn_raw', 'sleep', 'kill', 'signal',
           'reinit', 'get_hub', 'Hub', 'Waiter']

PY3 = True
string_types = (str,)
integer_types = (int,)


# The interpreter's main thread, as the signal module knows it: not
# threading.main_thread(), which gevent's monkey.patch_all() replaces.
MAIN_THREAD = MAIN_THREAD_IDENT = _main_thread_ident()
get_ident = get_ident


class _NONE(object):
    """A sentinel (gevent 1.0's ``_NONE``)."""
    __slots__ = ()

    def __repr__(self):
        return '<_NONE>'


_NONE = _NONE()
_get_hub = get_hub_if_exists
_UNSET = object()


def _is_hub_destroyed(tp):
    # ours, or gevent's own HubDestroyed when gevent runs on this loop
    return issubclass(tp, HubDestroyed) or (
        tp.__name__ == 'HubDestroyed' and issubclass(tp, GreenletExit))


def _exception_value(tp, value):
    """A value given as a str (gevent 1.0 callers) becomes an instance."""
    if isinstance(value, str) and isinstance(tp, type):
        return tp(value)
    return value


class Hub(HubCore):
    """Hub(loop=None, default=None): the greenlet that runs the event loop.

    One per thread (``get_hub()``).  The switching, ``run()`` and ``wait()``
    are compiled (``HubCore``); what is policy rather than hot path lives
    here: construction from the class lists, error reporting, ``join``,
    ``destroy``, the lazy resolver and thread pool, ``repr``.

    ``loop`` is a loop object (anything with a ``run`` method), or the flags
    (backend names) for a new one made from ``loop_class``; ``default``
    asks for the default loop, which belongs to the main thread.
    """

    #: Errors raised in the main greenlet by ``handle_error`` (always when
    #: there is no context).
    SYSTEM_ERROR = (KeyboardInterrupt, SystemExit, SystemError)
    #: Errors ``handle_error`` does not print.
    NOT_ERROR = (GreenletExit, SystemExit)

    # The modern hub's monitor and close helpers are defined here rather than
    # in a mixin: every greenlet type check on the hub (about 25 per switch
    # pair) walks the MRO, so each base class costs (callgrind, sleep(0)).

    #: The hub's PeriodicMonitoringThread, once started.
    periodic_monitoring_thread = None

    def start_periodic_monitoring_thread(self):
        """Start the blocking monitor if ``settings.monitor_thread`` is on
        and it is not running; return it (or None)."""
        if self.periodic_monitoring_thread is None and settings.monitor_thread:
            self.periodic_monitoring_thread = PeriodicMonitoringThread(self)
        return self.periodic_monitoring_thread

    def _stop_periodic_monitoring_thread(self):
        thread = self.periodic_monitoring_thread
        if thread is not None:
            thread.kill()
            self.periodic_monitoring_thread = None

    def cancel_waits_close_and_then(self, watchers, exc_kind, then, *then_args):
        """Close ``watchers`` (None entries are skipped), raising
        ``exc_kind`` in any greenlet waiting on one, then call
        ``then(*then_args)``: at once when nobody waits, else from the
        hub after the waiters were woken (what gevent's sockets call when
        they close)."""
        deferred = []
        for watcher in watchers:
            if watcher is None:
                continue
            if watcher.callback is None:
                watcher.close()
            else:
                deferred.append(watcher)
        if deferred:
            self.loop.run_callback(self._cancel_waits_then, deferred, exc_kind, then, then_args)
        else:
            then(*then_args)

    def _cancel_waits_then(self, watchers, exc_kind, then, then_args):
        for watcher in watchers:
            self._cancel_wait(watcher, exc_kind, True)
        then(*then_args)

    loop_class = config(list(DEFAULT_LOOP), 'GEVENT_LOOP', _loops)
    resolver_class = resolver_config(list(DEFAULT_RESOLVER), 'GEVENT_RESOLVER')
    threadpool_class = config(list(DEFAULT_THREADPOOL), 'GEVENT_THREADPOOL')
    backend = config(None, 'GEVENT_BACKEND')
    format_context = 'pprint.pformat'
    threadpool_size = 10
    name = ''
    thread_ident = None
    _resolver = None
    _threadpool = None
    _exception_stream = _UNSET
    # whether this hub owns its loop (and so may destroy it by itself): it
    # made it, or took over the loop its thread's previous hub kept.  Not a
    # loop given to Hub(loop=) or set_loop(), and never the default loop
    # outside the main thread: the default loop is the main thread's.
    _owns_loop = False

    def __init__(self, loop=None, default=None):
        # HubCore.__init__ is greenlet's (run, parent): not called
        self.thread_ident = get_ident()
        if hasattr(loop, 'run'):
            if default is not None:
                raise TypeError('Unexpected argument: default')
            self.loop = loop
        else:
            saved = _get_saved_loop()
            if saved is not None:
                self.loop = saved
                self._owns_loop = _saved_loop_owned()
            else:
                if default is None and self.thread_ident != MAIN_THREAD_IDENT:
                    default = False
                flags = self.backend if loop is None else loop
                loop_class = _import(self.loop_class)
                self.loop = loop_class(flags=flags, default=default)
                self._owns_loop = (self.thread_ident == MAIN_THREAD_IDENT
                                   or not getattr(self.loop, 'default', False))
        self._resolver = None
        self._threadpool = None
        self.format_context = _import(self.format_context)
        # gevent starts it when the hub starts running; here the hub's
        # thread is known already, and no Python frame is added to run()
        self.start_periodic_monitoring_thread()

    @property
    def main_hub(self):
        """True for the main thread's hub."""
        return self.thread_ident == MAIN_THREAD_IDENT

    @property
    def exception_stream(self):
        """Where errors are printed: sys.stderr (read each time) until assigned."""
        stream = self._exception_stream
        return sys.stderr if stream is _UNSET else stream

    @exception_stream.setter
    def exception_stream(self, value):
        self._exception_stream = value

    @exception_stream.deleter
    def exception_stream(self):
        self._exception_stream = _UNSET

    def __repr__(self):
        if self.loop is None:
            info = 'destroyed'
        else:
            try:
                info = self.loop._format()
            except Exception as ex:  # noqa: BLE001 (repr must not fail)
                info = str(ex) or '?'
        result = '<%s %r at 0x%x %s' % (type(self).__name__, self.name, id(self), info)
        if self._resolver is not None:
            result += ' resolver=%r' % (self._resolver,)
        if self._threadpool is not None:
            result += ' threadpool=%r' % (self._threadpool,)
        ident = self.thread_ident
        return result + ' thread_ident=%s>' % ('None' if ident is None else hex(ident),)

    # -- errors ----------------------------------------------------------

    def handle_error(self, context, type, value, tb):
        """Print the error (unless it is a NOT_ERROR) and raise system
        errors (or any error without a context) in the main greenlet.
        ``(None, None, None)`` handles the exception being handled, if any."""
        if type is None and value is None and tb is None:
            type, value, tb = sys.exc_info()
            if type is None:
                return
        else:
            value = _exception_value(type, value)
        if not _is_class(type) and isinstance(value, BaseException):
            type = value.__class__
        if not _is_class(type):
            raise TypeError('handle_error: type must be an exception class, not %r' % (type,))
        if _is_hub_destroyed(type):
            if value is None:
                value = type()
            raise value.with_traceback(tb)
        if not issubclass(type, self.NOT_ERROR):
            self.print_exception(context, type, value, tb)
        if context is None or issubclass(type, self.SYSTEM_ERROR):
            self.handle_system_error(type, value, tb)

    def handle_system_error(self, type, value, tb=None):
        """Raise the error in the hub's parent (the main greenlet); a greenlet
        other than the hub and the parent is resumed later if the program
        survives."""
        parent = self.parent
        if parent is None:
            raise RuntimeError('the hub has no parent greenlet')
        current = getcurrent()
        if current is self or current is parent or self.loop is None:
            parent.throw(type, value, tb)
            return
        cb = self.loop.run_callback(current.switch)
        try:
            parent.throw(type, value, tb)
        finally:
            try:
                cb.stop()
            except Exception:  # noqa: BLE001 (keep the error being raised)
                pass

    def print_exception(self, context, type, value, tb):
        """Write the traceback, then, as gevent does, the time (UTC, RFC 3339)
        and ``<context> failed with <Type>`` on one line (the time alone when
        there is no context), to ``exception_stream`` (nothing if it is
        false)."""
        stream = self.exception_stream
        if not stream:
            return
        value = _exception_value(type, value)
        try:
            name = type.__name__
        except Exception:  # noqa: BLE001
            name = 'exception'
        if value is None:
            stream.write('%s\n' % (name,))
        else:
            import traceback
            traceback.print_exception(type, value, tb, file=stream)
        import time
        stream.write(time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
                     + (' ' if context is not None else '\n'))
        if context is not None:
            if not isinstance(context, str):
                try:
                    context = self.format_context(context)
                except:  # noqa: E722  (show why formatting failed, go on)
                    sys.excepthook(*sys.exc_info())
                    context = repr(context)
                else:
                    if not isinstance(context, str):
                        context = str(context)
            stream.write('%s failed with %s\n\n' % (context, name))

    # -- waiting ---------------------------------------------------------

    def cancel_wait(self, watcher, error, close_watcher=False):
        """Raise ``error`` in the greenlet waiting on ``watcher`` (from the
        next callback pass); close the watcher if asked."""
        if watcher is None:
            return
        if watcher.callback is not None:
            self.loop.run_callback(self._cancel_wait, watcher, error, close_watcher)
        elif close_watcher:
            watcher.close()

    def _cancel_wait(self, watcher, error, close_watcher):
        active = watcher.active
        callback = watcher.callback
        if close_watcher:
            watcher.close()
        if active and callback is not None:
            glet = getattr(callback, '__self__', None)
            if glet is not None:
                glet.throw(error)

    def join(self, timeout=None, event=None):
        """Wait for the loop to run out of work (True), or for ``timeout``
        seconds or ``event`` (False).  Only from the main greenlet."""
        if getcurrent() is not self.parent:
            raise AssertionError('only possible from the MAIN greenlet')
        if self.dead:
            return True
        waiter = Waiter(self)
        switch = waiter.switch
        timer = None
        if event is not None:
            event.rawlink(switch)
        try:
            if timeout is not None:
                timer = self.loop.timer(timeout, ref=False)
                timer.start(switch, None)
            try:
                waiter.get()
            except LoopExit:
                return True
            return False
        finally:
            try:
                if timer is not None:
                    timer.close()
                if event is not None:
                    event.unlink(switch)
            except Exception:  # noqa: BLE001 (keep the result or the error)
                pass

    def destroy(self, destroy_loop=None):
        """Unwind the hub and destroy its loop or keep it for this thread's
        next hub.  By default (``destroy_loop=None``) a loop the hub owns is
        destroyed unless it is the default loop, and kept otherwise; a loop
        it does not own (given to ``Hub(loop=)`` or ``set_loop()``, or the
        main thread's default loop in another thread) is left alone.  A
        second call does nothing.  Only the hub's own thread may destroy it,
        or any thread once that one has exited; not from inside the hub (a
        callback)."""
        loop = self.loop
        if loop is None:
            return
        if (self.thread_ident is not None and self.thread_ident != get_ident()
                and _thread_alive(self.thread_ident)):
            raise InvalidThreadUseError(
                'Hub.destroy() must be called from the hub\'s own thread '
                '(%s), not %s' % (hex(self.thread_ident), hex(get_ident())))
        if getcurrent() is self:
            raise RuntimeError('Hub.destroy() cannot be called from inside the hub '
                               '(a callback); call it from another greenlet')
        owned = self._owns_loop
        keep = True
        if destroy_loop is None:
            destroy_loop = owned and not loop.default
            keep = owned
        if self._resolver is not None:
            self._resolver.close()
        self._resolver = None
        if self._threadpool is not None:
            self._threadpool.kill()
        self._threadpool = None
        self._stop_periodic_monitoring_thread()
        if not self.dead:  # running, or never started
            try:
                self.throw(HubDestroyed(destroy_loop))
            except (LoopExit, HubDestroyed, greenlet_error):
                pass
        if destroy_loop:
            if _get_saved_loop() is loop:
                _set_saved_loop(None)
            loop.destroy()
        elif keep:
            _set_saved_loop(loop, owned)
        self.loop = None
        if get_hub_if_exists() is self:
            set_hub(None)

    # -- lazily created helpers -----------------------------------------

    @property
    def resolver(self):
        """The DNS resolver, made from ``resolver_class`` on first use."""
        if self._resolver is None:
            self.resolver_class = resolver_class = _import(self.resolver_class)
            self._resolver = resolver_class(hub=self)
        return self._resolver

    @resolver.setter
    def resolver(self, value):
        self._resolver = value

    @resolver.deleter
    def resolver(self):
        self._resolver = None

    @property
    def threadpool(self):
        """The thread pool, made from ``threadpool_class`` on first use."""
        if self._threadpool is None:
            self.threadpool_class = threadpool_class = _import(self.threadpool_class)
            if settings.is_explicit('threadpool_idle_task_timeout'):
                # GEVENT_THREADPOOL_IDLE_TASK_TIMEOUT: idle workers exit
                # after it, as in gevent (which always passes it, default 5 s)
                self._threadpool = threadpool_class(
                    self.threadpool_size, hub=self,
                    idle_task_timeout=settings.threadpool_idle_task_timeout)
            else:
                # the documented call, ThreadPool(size, hub=hub); workers stay until the pool is killed
                self._threadpool = threadpool_class(self.threadpool_size, hub=self)
        return self._threadpool

    @threadpool.setter
    def threadpool(self, value):
        self._threadpool = value

    @threadpool.deleter
    def threadpool(self):
        self._threadpool = None


def _is_class(obj):
    return isinstance(obj, type)


set_default_hub_class(Hub)



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

    The signal is taken over, as on libev: while this (or any other signal
    watcher on ``signalnum``) is active, a delivery runs the watchers and
    nothing else.  Python's handler for the signal does not run; for SIGINT
    there is no ``KeyboardInterrupt``.  ``cancel()`` on the last one gives
    back the disposition it replaced.  SIGKILL and SIGSTOP cannot be caught:
    ``ValueError``.

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
    for obj in (hub._threadpool, hub._resolver, hub.periodic_monitoring_thread):
        on_fork = getattr(obj, '_on_fork', None)
        if on_fork is not None:
            on_fork()

