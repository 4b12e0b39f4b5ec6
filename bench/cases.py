"""One benchmark measurement in this process: ``python cases.py IMPL CASE N [cold]``.

Prints one JSON line: ``{"metrics": {...}, "info": {...}}``, or ``{"na": reason}`` when the
implementation lacks a feature the case needs.  IMPL is one of ``gevent_c`` (gevent_c.hub),
``gevent`` (gevent.hub on its default loop, libev), ``gevent-libuv`` (GEVENT_LOOP=libuv),
``gevent-ours`` (gevent's own hub on our loop: GEVENT_LOOP=gevent_c.core.loop), ``eventlet``
or ``greenlet`` (the floor, no hub).  The cases use only API that gevent.hub and gevent_c.hub share, so a case
lights up for gevent_c as soon as the feature lands.

This module is also imported by run.py for the registry (CASES, ROWS); it imports no
event-loop library at module level.
"""
import gc
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
from collections import namedtuple

now = time.perf_counter_ns
HUBS = ('gevent_c', 'gevent', 'gevent-libuv')
GEVENTS = ('gevent', 'gevent-libuv', 'gevent-ours')   # gevent's hub on each loop
ALL = HUBS + ('eventlet', 'gevent-ours')
WITH_OURS = ALL                                       # public-API cases: every column
SHARED = HUBS + ('eventlet',)
OURS_LOOP = 'gevent_c.core.loop'


class NA(Exception):
    """The implementation lacks a feature this case needs."""


def feature(what, get):
    try:
        return get()
    except (AttributeError, ImportError, NotImplementedError) as e:
        raise NA('%s: %s: %s' % (what, type(e).__name__, e)) from None


class HubPrims:
    """gevent.hub and gevent_c.hub, through their shared public API."""

    def __init__(self, hub):
        self.hub = hub
        self.sleep = hub.sleep
        self.spawn = hub.spawn_raw

    def reader(self, fd):
        h = self.hub.get_hub()
        w = feature('loop.io', lambda: h.loop.io(fd, 1))
        return lambda: h.wait(w)

    def apply(self):
        return feature('hub.threadpool', lambda: self.hub.get_hub().threadpool).apply

    def getaddrinfo(self):
        return feature('hub.resolver', lambda: self.hub.get_hub().resolver).getaddrinfo

    def event(self):
        w = self.hub.Waiter()
        run_callback = self.hub.get_hub().loop.run_callback
        return w.get, lambda value: run_callback(w.switch, value)   # Waiter.switch: hub only


class EventletPrims:
    def __init__(self):
        import eventlet
        self.eventlet = eventlet
        self.hub = None
        self.sleep = eventlet.sleep
        self.spawn = eventlet.spawn_n

    def reader(self, fd):
        from eventlet.hubs import trampoline
        return lambda: trampoline(fd, read=True)

    def apply(self):
        from eventlet import tpool
        return lambda f: tpool.execute(f)

    def getaddrinfo(self):
        from eventlet.green import socket as gsocket
        return gsocket.getaddrinfo

    def event(self):
        from eventlet.event import Event
        ev = Event()
        return ev.wait, ev.send


def load(impl):
    if impl == 'gevent_c':
        import gevent_c.hub as hub
    elif impl in GEVENTS:
        if impl != 'gevent':
            os.environ['GEVENT_LOOP'] = 'libuv' if impl == 'gevent-libuv' else OURS_LOOP
        import gevent.hub as hub
    elif impl == 'eventlet':
        return EventletPrims()
    elif impl == 'greenlet':
        return None
    else:
        raise SystemExit('unknown implementation %r' % impl)
    return HubPrims(hub)


def nop():
    return None


# --- the cases: f(prims, n) -> {metric: value} ---------------------------------------------

def sleep0(p, n):
    sleep = p.sleep
    t = now()
    for _ in range(n):
        sleep(0)
    return {'sleep0': (now() - t) / n}


def callback(p, n):
    hub = p.hub
    run_callback = hub.get_hub().loop.run_callback
    Waiter = hub.Waiter
    t = now()
    for _ in range(n):
        w = Waiter()
        run_callback(w.switch, None)
        w.get()
    return {'callback': (now() - t) / n}


def timer0(p, n):
    h = p.hub.get_hub()
    timer = h.loop.timer(0)
    wait = h.wait
    t = now()
    for _ in range(n):
        wait(timer)
    return {'timer0': (now() - t) / n}


def io_pingpong(p, n):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    wait_a, wait_b = p.reader(a.fileno()), p.reader(b.fileno())

    def echo():
        for _ in range(n):
            wait_b()
            b.send(b.recv(1))

    p.spawn(echo)
    t = now()
    for _ in range(n):
        a.send(b'x')
        wait_a()
        a.recv(1)
    dt = now() - t
    p.sleep(0)
    a.close()
    b.close()
    return {'io': dt / n}


def make_spawn(size):
    def spawn(p, n):
        spawn_raw, sleep = p.spawn, p.sleep
        rounds = max(1, n // size)
        total = 0
        for _ in range(rounds):
            ran = []

            def job():
                ran.append(None)
            gc.collect()
            t = now()
            for _ in range(size):
                spawn_raw(job)
            while len(ran) < size:
                sleep(0)
            total += now() - t
        return {'spawn_%d' % size: total / (rounds * size)}
    return spawn


def sleepers(p, n):
    rnd = random.Random(6)
    delays = [rnd.random() * 0.01 for _ in range(n)]
    wait, done = p.event()
    left = [n]
    sleep = p.sleep

    def sleeper(d):
        sleep(d)
        left[0] -= 1
        if not left[0]:
            done(None)
    gc.collect()
    t = now()
    for d in delays:
        p.spawn(sleeper, d)
    wait()
    return {'sleepers': now() - t}


def gevent_spawn(p, n):
    """gevent.spawn() S Greenlets of a trivial function, then gevent.joinall()."""
    import gevent
    size = 1000
    rounds = max(1, n // size)
    total = 0
    for _ in range(rounds):
        gc.collect()
        t = now()
        gevent.joinall([gevent.spawn(nop) for _ in range(size)])
        total += now() - t
    return {'gspawn': total / (rounds * size)}


def gevent_socket(p, n):
    """gevent.socket ping-pong: blocking-style sendall/recv on a socketpair."""
    import gevent
    from gevent import socket as gsocket
    a, b = gsocket.socketpair()

    def echo():
        for _ in range(n):
            b.sendall(b.recv(1))
    g = gevent.spawn(echo)
    t = now()
    for _ in range(n):
        a.sendall(b'x')
        a.recv(1)
    dt = now() - t
    g.join()
    a.close()
    b.close()
    return {'gsocket': dt / n}


def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def memory(p, n):
    started = [0]
    sleep = p.sleep

    def sleeper():
        started[0] += 1
        sleep(3600)
    sleep(0)
    gc.collect()
    before = rss()
    for _ in range(n):
        p.spawn(sleeper)
    while started[0] < n:
        sleep(0)
    gc.collect()
    return {'memory': (rss() - before) / n}


def threadpool(p, n):
    apply = p.apply()
    t = now()
    for _ in range(n):
        apply(nop)
    return {'threadpool': (now() - t) / n}


def getaddrinfo(p, n):
    gai = p.getaddrinfo()
    t = now()
    for _ in range(n):
        gai('localhost', 80)
    return {'getaddrinfo': (now() - t) / n}


def timer_precision(p, n):
    """How late sleep(d) wakes up, for d = 1, 10 and 100 ms: n, n/2 and n/10 sleeps in a row
    (the only greenlet, so the loop is idle meanwhile); the median and the 99th percentile of
    (time slept - d) per d.  gevent's hub.sleep is what time.sleep is under monkey.patch_all()."""
    sleep = p.sleep
    sleep(0.001)
    out = {}
    for d, k in ((0.001, n), (0.01, max(1, n // 2)), (0.1, max(1, n // 10))):
        late = []
        for _ in range(k):
            t = now()
            sleep(d)
            late.append(now() - t - d * 1e9)
        late.sort()
        ms = int(d * 1000)
        out['late_%dms' % ms] = late[len(late) // 2]
        out['late_%dms_p99' % ms] = late[min(len(late) - 1, int(len(late) * 0.99))]
        out['late_%dms_min' % ms] = late[0]
    return out


def idle(p, n):
    """Hub blocked n ms on a socket read; another process writes one byte at the end."""
    a, b = socket.socketpair()
    a.setblocking(False)
    wait = p.reader(a.fileno())
    code = 'import os,time; time.sleep(%r); os.write(%d, b"x"); time.sleep(30)' % (
        n / 1000, b.fileno())
    child = subprocess.Popen([sys.executable, '-c', code], pass_fds=(b.fileno(),))
    try:
        p.sleep(0)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        wait()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        a.recv(1)
    finally:
        child.kill()
        child.wait()
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    # one voluntary context switch is the expected wake-up when the byte arrives
    return {'idle_cpu': cpu * 1e9, 'idle_wakeups': r1.ru_nvcsw - r0.ru_nvcsw - 1}


def floor(p, n):
    from greenlet import greenlet, getcurrent
    back = getcurrent().switch

    def bounce():
        while True:
            back()
    g = greenlet(bounce)
    g.switch()
    switch = g.switch
    t = now()
    for _ in range(n):
        switch()
    return {'floor': (now() - t) / n}


def floor_spawn(p, n):
    from greenlet import greenlet
    t = now()
    for _ in range(n):
        greenlet(nop).switch()
    return {'floor_spawn': (now() - t) / n}


def floor_memory(p, n):
    from greenlet import greenlet, getcurrent
    back = getcurrent().switch

    def parked():
        back()
    gc.collect()
    before = rss()
    keep = [greenlet(parked) for _ in range(n)]
    for g in keep:
        g.switch()
    gc.collect()
    return {'floor_memory': (rss() - before) / n}


def floor_io(p, n):
    """bench/floor.c: n round trips between two libuv polls that stay armed (no Python)."""
    import floors
    pingpong = floors.load().io_pingpong
    t = now()
    pingpong(n)
    return {'floor_io': (now() - t) / n}


def floor_hub(p, n):
    """bench/floor.c: sleep(0) on the smallest C hub over libuv, from a Python loop."""
    import floors
    sleep = floors.load().sleep0
    t = now()
    for _ in range(n):
        sleep()
    return {'floor_hub': (now() - t) / n}


TSCALE_N = {'1k': 1000, '10k': 10000, '100k': 100000, '1M': 1000000}
TSCALE_OPS = ('start', 'stop', 'churn', 'restart')


def make_timer_scale(size, op, short=False):
    """N = size one-shot timers active on the hub's loop (never run meanwhile), with deadlines
    random in 1..60 s (socket timeouts) or, `short`, in 1..49 ms; then per op, batches of up
    to 1,000 of them: `start` (of stopped ones), `stop` (of active ones), `restart` (start()
    on an active one), or `churn` (start() + stop() of another timer, N staying active).
    ns per op of the median batch."""
    metric = 'ts%s_%s_%s' % ('short' if short else '', op, size)

    def case(p, n):
        loop = p.hub.get_hub().loop
        rnd = random.Random(7)
        lo, hi = (0.001, 0.049) if short else (1.0, 60.0)
        k = TSCALE_N[size]
        timers = [loop.timer(rnd.uniform(lo, hi)) for _ in range(k)]
        for tm in timers:
            tm.start(nop)
        batch = min(k, 1000)
        extra = [loop.timer(rnd.uniform(lo, hi)) for _ in range(batch)]
        rounds = max(1, n // batch)
        per = []
        for r in range(rounds + 1):              # round 0 warms up, untimed
            i = rnd.randrange(0, k - batch + 1)
            group = timers[i:i + batch]
            if op == 'start':
                for tm in group:
                    tm.stop()
                t = now()
                for tm in group:
                    tm.start(nop)
                dt = now() - t
            elif op == 'stop':
                t = now()
                for tm in group:
                    tm.stop()
                dt = now() - t
                for tm in group:
                    tm.start(nop)
            elif op == 'restart':
                t = now()
                for tm in group:
                    tm.start(nop)
                dt = now() - t
            else:
                t = now()
                for tm in extra:
                    tm.start(nop)
                    tm.stop()
                dt = now() - t
            if r:
                per.append(dt / batch)
        for tm in timers:
            tm.stop()
        per.sort()     # the median batch: a batch the scheduler cut into is an outlier
        return {metric: per[len(per) // 2]}
    return metric, case


# --- registry --------------------------------------------------------------------------------
# impls: which implementations have the case; n/quick: ops per process in a full / --quick run;
# warm: run once with n//10 first; impl 'greenlet' (no hub) marks the floors; callgrind: single-threaded, instruction-countable.
Case = namedtuple('Case', 'fn impls n quick warm callgrind')
CASES = {
    'sleep0':       Case(sleep0, WITH_OURS, 100000, 100, True, True),
    'callback':     Case(callback, HUBS, 100000, 100, True, True),
    'timer0':       Case(timer0, HUBS, 50000, 100, True, True),
    'io':           Case(io_pingpong, WITH_OURS, 10000, 50, True, True),
    'spawn_500':    Case(make_spawn(500), WITH_OURS, 50000, 500, True, True),
    'spawn_2000':   Case(make_spawn(2000), WITH_OURS, 50000, 2000, True, True),
    'spawn_10000':  Case(make_spawn(10000), WITH_OURS, 50000, 10000, True, True),
    'sleepers':     Case(sleepers, WITH_OURS, 10000, 100, False, False),
    'memory':       Case(memory, SHARED, 100000, 1000, False, False),
    'threadpool':   Case(threadpool, SHARED, 5000, 10, True, False),
    'getaddrinfo':  Case(getaddrinfo, SHARED, 3000, 5, True, False),
    'idle':         Case(idle, SHARED, 2000, 50, False, False),
    'timers':       Case(timer_precision, WITH_OURS, 200, 10, False, False),
    'gspawn':       Case(gevent_spawn, GEVENTS, 50000, 1000, True, True),
    'gsocket':      Case(gevent_socket, GEVENTS, 10000, 50, True, True),
    'floor':        Case(floor, ('greenlet',), 200000, 100, True, True),
    'floor_spawn':  Case(floor_spawn, ('greenlet',), 50000, 100, True, True),
    'floor_memory': Case(floor_memory, ('greenlet',), 100000, 1000, False, False),
    'floor_io':     Case(floor_io, ('greenlet',), 100000, 50, True, True),
    'floor_hub':    Case(floor_hub, ('greenlet',), 200000, 100, True, True),
}
for _size in TSCALE_N:
    for _short in (False, True):
        for _op in TSCALE_OPS[:3] if _short else TSCALE_OPS:
            _m, _fn = make_timer_scale(_size, _op, _short)
            # callgrind: not at 1M (minutes under valgrind for the setup alone), and only
            # where every op of a round is the one measured (start and stop rounds also
            # stop or restart their batch, untimed)
            # against gevent on libev only: gevent's libuv loop takes 13 s and 1 GB per
            # process at 1M (its timers are cffi objects)
            CASES[_m] = Case(_fn, ('gevent_c', 'gevent'), 20000, 1000, False,
                             _size != '1M' and _op in ('churn', 'restart'))

# Report rows: metric, label, unit, target (gevent_c median / gevent default-loop median).
Row = namedtuple('Row', 'metric case label unit target')
ROWS = [
    Row('sleep0', 'sleep0', '`sleep(0)`', 'ns/op', 0.35),
    Row('callback', 'callback', '`run_callback(w.switch)` + `w.get()`', 'ns/op', 0.4),
    Row('timer0', 'timer0', '`hub.wait()` on a 0-s timer', 'ns/op', 0.3),
    Row('io', 'io', 'io ping-pong, 1 byte (round trip)', 'ns/op', 0.7),
    Row('spawn_500', 'spawn_500', '`spawn_raw` x 500 (per spawn)', 'ns/op', 0.3),
    Row('spawn_2000', 'spawn_2000', '`spawn_raw` x 2,000 (per spawn)', 'ns/op', 0.3),
    Row('spawn_10000', 'spawn_10000', '`spawn_raw` x 10,000 (per spawn)', 'ns/op', 0.3),
    Row('sleepers', 'sleepers', '10,000 sleepers < 10 ms (total)', 'ns', 0.5),
    Row('memory', 'memory', 'RSS per sleeping greenlet (100,000)', 'B', 1.0),
    Row('threadpool', 'threadpool', '`threadpool.apply` round trip', 'ns/op', 0.5),
    Row('getaddrinfo', 'getaddrinfo', "`resolver.getaddrinfo('localhost', 80)`", 'ns/op', 0.55),
    Row('idle_cpu', 'idle', 'idle hub, 2 s on a read: CPU time', 'ns', None),
    Row('idle_wakeups', 'idle', 'idle hub, 2 s on a read: wake-ups', 'count', 'zero'),
    Row('late_1ms', 'timers', '`sleep(0.001)`: lateness, median', 'ns', None),
    Row('late_1ms_p99', 'timers', '`sleep(0.001)`: lateness, p99', 'ns', None),
    Row('late_10ms', 'timers', '`sleep(0.01)`: lateness, median', 'ns', None),
    Row('late_10ms_p99', 'timers', '`sleep(0.01)`: lateness, p99', 'ns', None),
    Row('late_100ms', 'timers', '`sleep(0.1)`: lateness, median', 'ns', None),
    Row('late_100ms_p99', 'timers', '`sleep(0.1)`: lateness, p99', 'ns', None),
    Row('gspawn', 'gspawn', '`gevent.spawn` x 1,000 + `joinall` (per greenlet)', 'ns/op', None),
    Row('gsocket', 'gsocket', '`gevent.socket` ping-pong, 1 byte (round trip)', 'ns/op', None),
    Row('floor', 'floor', 'raw greenlet switch pair (floor)', 'ns/op', None),
    Row('floor_spawn', 'floor_spawn', 'raw greenlet create + run + die (spawn floor)', 'ns/op',
        None),
    Row('floor_memory', 'floor_memory', 'RSS per raw parked greenlet (memory floor)', 'B', None),
    Row('floor_io', 'floor_io', 'two armed libuv polls, 1-byte round trip (io floor, C)',
        'ns/op', None),
    Row('floor_hub', 'floor_hub', '`sleep(0)` on a minimal C hub over libuv (floor)', 'ns/op',
        None),
]

for _size in TSCALE_N:
    for _short in (False, True):
        for _op in TSCALE_OPS[:3] if _short else TSCALE_OPS:
            ROWS.append(Row('ts%s_%s_%s' % ('short' if _short else '', _op, _size),
                            'ts%s_%s_%s' % ('short' if _short else '', _op, _size),
                            'timer `%s`, %s active, deadlines %s' % (
                                'start()+stop()' if _op == 'churn' else _op + '()', _size,
                                '1..49 ms' if _short else '1..60 s'),
                            'ns/op', 1.0))


# Instructions per op under callgrind, each with the floor it is bounded by.
INSTR_TARGETS = {'sleep0': (4200, 'floor_hub'), 'callback': (6000, None),
                 'timer0': (6000, None), 'io': (15000, 'floor_io')}


def measure(impl, name, n, warm=True):
    case = CASES[name]
    p = load(impl)
    info = {'impl': impl, 'case': name, 'n': n, 'python': sys.version.split()[0]}
    if p is not None and p.hub is not None:
        info['loop'] = type(p.hub.get_hub().loop).__module__
    if warm and case.warm and n >= 10:
        case.fn(p, n // 10)
    gc.collect()
    return {'metrics': case.fn(p, n), 'info': info}


def main(argv):
    impl, name, n = argv[1], argv[2], int(argv[3])
    cold = argv[4:] == ['cold']          # --callgrind: no warm-up run, so counts difference cleanly
    try:
        out = measure(impl, name, n, warm=not cold)
    except NA as e:
        out = {'na': str(e)}
    sys.stdout.write(json.dumps(out) + '\n')
    sys.stdout.flush()
    if name in ('memory', 'floor_memory'):   # don't tear down 100,000 parked greenlets
        os._exit(0)


if __name__ == '__main__':
    main(sys.argv)
