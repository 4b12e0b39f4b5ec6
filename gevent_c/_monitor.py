"""The blocking monitor: gevent's ``PeriodicMonitoringThread``, on our loop.

With ``GEVENT_MONITOR_THREAD_ENABLE`` (``settings.monitor_thread``) each hub
gets a native thread that wakes every ``max_blocking_time`` seconds and
reports a greenlet (or a hub callback) that has kept the loop from running
for that long: an :class:`EventLoopBlocked` event to the subscribers, and,
with ``print_blocking_reports``, the blocked thread's stack on the hub's
``exception_stream``, in gevent's format.

How a stall is seen differs from gevent, and costs less.  gevent installs a
greenlet trace function, a Python call on every greenlet switch, and calls
the hub blocked when no switch happened in a period.  Here the loop counts
its passes in C (``loop.iteration``) and says whether it is waiting in the
poll (``loop.polling``).  The loop is blocked when it is running
(``loop.depth``), not polling, and has not finished a pass between two
samples ``max_blocking_time`` apart.  The thread takes those samples in C
with the GIL released (``loop._stall_wait``) and takes the GIL only to
write a report, so it never competes with the hub for the GIL while the loop
is healthy.  That holds for thresholds up to ``stall_wait_timeout`` (0.5 s),
the wait after which the thread looks whether it should stop; above it the
thread sleeps a threshold in steps of that length (any threshold, ``inf``
included: it then never reports) and samples once per threshold with the
GIL, a few microseconds a period.  Nothing runs on the switch path, so a hub with the monitor on
costs what it costs without (bench/monitor_cost.py), and a callback
that holds up the loop inside the hub greenlet is reported too, which
gevent's switch counter cannot see.  One stall is reported once, not every
period.

gevent's memory monitor (psutil) is not implemented.
"""
import gc
import os
import sys
import time
import traceback
import _thread
from weakref import ref as wref

from greenlet import greenlet

from gevent_c._config import settings

__all__ = ['PeriodicMonitoringThread', 'EventLoopBlocked', 'subscribers', 'notify']


def _original(module, name, default):
    # gevent's monkey-patching replaces the thread and sleep functions;
    # the monitor needs the real ones.
    monkey = sys.modules.get('gevent.monkey')
    if monkey is not None:
        try:
            return monkey.get_original(module, name)
        except (ImportError, AttributeError):
            pass
    return default


_start_new_thread = _thread.start_new_thread
_sleep = time.sleep

#: Callables that receive every event (an :class:`EventLoopBlocked`).
#: ``zope.event.subscribers`` are notified too when zope.event is installed.
subscribers = []


def notify(event):
    """Call every subscriber with ``event`` (ours, then zope.event's)."""
    for sub in list(subscribers):
        sub(event)
    zope_event = sys.modules.get('zope.event')
    if zope_event is not None:
        zope_event.notify(event)


class EventLoopBlocked(object):
    """The event sent when the loop was blocked (gevent.events.EventLoopBlocked).

    ``greenlet``: the greenlet that was running (the hub itself when a
    callback held the loop); ``blocking_time``: the threshold
    (``max_blocking_time``); ``info``: the report, a list of lines that
    subscribers may change before it is printed; ``hub``: the hub."""

    def __init__(self, greenlet, blocking_time, info, *, hub=None):
        self.greenlet = greenlet
        self.blocking_time = blocking_time
        self.info = info
        self.hub = hub

    def __repr__(self):
        return '<%s greenlet=%r blocking_time=%r>' % (
            type(self).__name__, self.greenlet, self.blocking_time)


class _MonitorEntry(object):
    __slots__ = ('function', 'period', 'last_run_time')

    def __init__(self, function, period):
        self.function = function
        self.period = period
        self.last_run_time = 0

    def __repr__(self):
        return repr((self.function, self.period, self.last_run_time))


def _root(glet):
    while glet.parent is not None:
        glet = glet.parent
    return glet


def _running_greenlet(hub):
    """The greenlet running in the hub's thread, or None when that cannot be
    told (only done to write a report: it scans the GC's objects).
    greenlet does not say which greenlet another thread runs; but a
    suspended greenlet with Python code on its stack has a saved frame
    (``gr_frame``), and the running one has none.  So the one started, live
    greenlet of that thread (same root) without a frame, other than the hub
    and the thread's main greenlet, is it; with none such, the main
    greenlet if it has no saved frame (it runs), else the hub itself
    (callbacks run in the hub, whose own loop is C, frameless)."""
    root = _root(hub)
    found = []
    for obj in gc.get_objects():
        if (isinstance(obj, greenlet) and obj is not hub and obj is not root and obj
                and obj.gr_frame is None and _root(obj) is root):
            found.append(obj)
    if len(found) == 1:
        return found[0]
    if found:
        return None     # several frameless greenlets (C-only runs): unknown
    if root.gr_frame is None and not root.dead:
        return root
    return hub


class PeriodicMonitoringThread(object):
    """PeriodicMonitoringThread(hub): the monitor thread of ``hub``; create
    it in the hub's thread (``Hub.start_periodic_monitoring_thread``)."""

    #: How long to sleep when every monitoring function is disabled.
    inactive_sleep_time = 2.0
    #: The shortest sleep, whatever the periods ask.
    min_sleep_time = 0.005

    def __init__(self, hub):
        if hub.thread_ident is not None and hub.thread_ident != _thread.get_ident():
            raise RuntimeError('the monitor must be created in the hub\'s thread')
        self._hub_wref = wref(hub, self._on_hub_gc)
        self.should_run = True
        self._last = None            # (iteration, blocked at that sample)
        self._reported = None        # iteration of the stall last reported
        self._monitoring_functions = [_MonitorEntry(self.monitor_blocking,
                                                    settings.max_blocking_time)]
        self._calculated_sleep_time = settings.max_blocking_time
        self.pid = os.getpid()
        self.monitor_thread_ident = _original('_thread', 'start_new_thread',
                                              _start_new_thread)(self, ())

    @property
    def hub(self):
        return self._hub_wref()

    def _on_fork(self):
        # called by hub reinit() in a forked child: the thread did not survive
        pid = os.getpid()
        if pid != self.pid and self.should_run:
            self.pid = pid
            self._last = self._reported = None
            self.monitor_thread_ident = _original('_thread', 'start_new_thread',
                                                  _start_new_thread)(self, ())

    def monitoring_functions(self):
        """The entries (function, period, last_run_time); the first is
        monitor_blocking, its period kept equal to max_blocking_time."""
        mbt = settings.max_blocking_time
        if mbt != self._monitoring_functions[0].period:
            self._monitoring_functions[0].period = mbt
            self._calculated_sleep_time = min(x.period for x in self._monitoring_functions)
        return self._monitoring_functions

    def add_monitoring_function(self, function, period):
        """Call ``function(hub)`` in the monitor thread every ``period``
        seconds; ``period=None`` removes it."""
        if not callable(function):
            raise ValueError('function must be callable')
        if period is None:
            self._monitoring_functions = [x for x in self._monitoring_functions
                                          if x.function != function]
        elif not period > 0:     # NaN too
            raise ValueError('Period must be positive.')
        else:
            entry = _MonitorEntry(function, period)
            funcs = [x if x.function != function else entry
                     for x in self._monitoring_functions]
            if entry not in funcs:   # identity: not there to replace
                funcs.append(entry)
            self._monitoring_functions = funcs
        self._calculated_sleep_time = min(x.period for x in self._monitoring_functions)

    def calculate_sleep_time(self):
        min_sleep = self._calculated_sleep_time
        if min_sleep <= 0:
            return self.inactive_sleep_time
        return max(min_sleep, self.min_sleep_time)

    def kill(self):
        """Stop the thread (after its current sleep)."""
        self.should_run = False

    def _on_hub_gc(self, _):
        self.kill()

    #: How long one GIL-free wait for a stall lasts before the thread looks
    #: whether it should stop (kill() takes effect within this); also the
    #: longest single sleep of the thread, whatever the periods.
    stall_wait_timeout = 0.5

    def _plan(self, functions=None):
        """How the thread waits next: ``('stall_wait', interval, timeout)``
        for a GIL-free wait in C (only the blocking check, and a threshold
        no longer than ``stall_wait_timeout``: two samples ``interval``
        apart fit in one wait), else ``('sleep', seconds, chunk)``: sleep
        ``seconds`` in steps of at most ``chunk`` (so kill() is seen within
        ``chunk``), then run the functions that are due; the blocking
        check compares its sample with the previous one, a period ago."""
        if functions is None:
            functions = self.monitoring_functions()
        chunk = self.stall_wait_timeout
        if len(functions) == 1:
            period = max(functions[0].period, self.min_sleep_time)
            if period <= chunk:
                return ('stall_wait', period, chunk)
        return ('sleep', self.calculate_sleep_time(), chunk)

    def _sleep_for(self, seconds, chunk, sleep):
        """Sleep ``seconds`` (inf: until killed) in steps of at most
        ``chunk``; False when the thread should stop."""
        deadline = time.monotonic() + seconds
        while self.should_run:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            sleep(min(left, chunk))
        return False

    def __call__(self):
        # the monitor thread
        sleep = _original('time', 'sleep', _sleep)
        try:
            while self.should_run:
                functions = self.monitoring_functions()
                hub = self.hub
                if hub is None or getattr(hub, 'loop', None) is None:
                    self.kill()
                    break
                how, a, b = self._plan(functions)
                if how == 'stall_wait' and hasattr(hub.loop, '_stall_wait'):
                    # Only the blocking check: wait for a stall in C, without
                    # the GIL; a healthy loop never hears from this thread.
                    loop = hub.loop
                    del hub
                    iteration = loop._stall_wait(a, b, self._reported)
                    del loop
                    hub = self.hub
                    if iteration is not None and self.should_run and hub is not None:
                        self._report(hub, iteration)
                    del hub
                    continue
                if how == 'stall_wait':
                    a = b = self.calculate_sleep_time()
                del hub      # not kept alive by a long sleep
                if not self._sleep_for(a, b, sleep):
                    break
                hub = self.hub
                if hub is None or getattr(hub, 'loop', None) is None:
                    continue
                now = time.perf_counter()
                for entry in functions:
                    if entry.period and entry.last_run_time + entry.period <= now:
                        entry.last_run_time = now
                        entry.function(hub)
                del hub
        except SystemExit:
            pass
        except BaseException:  # noqa: BLE001 (a daemon thread: report, never raise)
            if sys is not None and sys.stderr is not None:
                hub = self.hub
                if hub is not None and getattr(hub, 'loop', None) is not None:
                    try:
                        hub.print_exception(self, *sys.exc_info())
                    except Exception:  # noqa: BLE001
                        pass

    def _sample(self, hub):
        """(iteration, blocked-looking) for the loop now, or None."""
        loop = hub.loop
        try:
            return loop.iteration, loop.depth > 0 and not loop.polling
        except Exception:  # noqa: BLE001 (destroyed under us)
            return None

    def monitor_blocking(self, hub):
        """Report if the loop has been held since the previous sample;
        returns (greenlet, report) when it reported, else None."""
        sample = self._sample(hub)
        last, self._last = self._last, sample
        if sample is None or last is None:
            return None
        iteration, busy = sample
        if not busy or iteration != last[0] or not last[1] or self._reported == iteration:
            return None
        return self._report(hub, iteration)

    def _report(self, hub, iteration):
        """Report the stall seen on pass ``iteration``: the event, then the
        printed report.  Returns (greenlet, report)."""
        self._reported = iteration
        active = _running_greenlet(hub)
        report = self.blocking_report(hub, active)
        try:
            moved_on = hub.loop.iteration != iteration
        except Exception:  # noqa: BLE001 (destroyed meanwhile)
            moved_on = True
        if moved_on:
            # the GIL was held (a C call) until the loop ran again
            report.insert(4, '    The loop ran again before this report could be made '
                             '(the GIL was held): the stack is where the thread is now')
        notify(EventLoopBlocked(active, settings.max_blocking_time, report, hub=hub))
        return self._show_blocking_report(hub, report, active)

    def blocking_report(self, hub, active):
        """gevent's report: a header, who reported, the blocked stack."""
        report = ['=' * 80,
                  '\n%s : Greenlet %s appears to be blocked' % (
                      time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), active)]
        report.append('    Reported by %s' % (self,))
        report.append('    The loop has not run for at least %.3f s' % (
            settings.max_blocking_time,))
        try:
            frame = sys._current_frames()[hub.thread_ident]
        except KeyError:
            stack = ['Unknown: No thread found for hub %r\n' % (hub,)]
        else:
            stack = traceback.format_stack(frame)
        report.append('Blocked Stack (for thread id %s):' % (hex(hub.thread_ident),))
        report.append(''.join(stack))
        return report

    def _show_blocking_report(self, hub, report, active):
        if settings.print_blocking_reports:
            stream = hub.exception_stream
            if stream:
                for line in report:
                    print(line, file=stream)
        return (active, report)

    def __repr__(self):
        return '<%s at %s in thread %s for %r>' % (
            type(self).__name__, hex(id(self)), hex(self.monitor_thread_ident),
            self._hub_wref())
