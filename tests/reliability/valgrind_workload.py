"""A representative gevent_c workload for valgrind memcheck (make test-valgrind).

Exercises every public operation a few hundred times (Waiter round trips,
start/stop/close of every watcher type, run_callback, spawn_raw, thread pool
apply, the thread / blocking / c-ares resolvers, a hub created and destroyed
in a thread, private loops destroyed with live watchers, io on closed fds),
then tears everything down (hub destroyed with its loop, gc) so that what
valgrind reports as "definitely lost" at exit is a real leak.

usage: python tests/reliability/valgrind_workload.py [N]   (default N=200)
"""
import gc
import os
import signal
import socket
import sys
import threading

import gevent_c.core as core
import gevent_c.hub as H
from gevent_c.threadpool import ThreadPool

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def f(*a):
    pass


def waiters(hub):
    loop = hub.loop
    for i in range(N):
        w = H.Waiter()
        loop.run_callback(w.switch, i)
        assert w.get() == i
        w = H.Waiter()
        loop.run_callback(w.throw, ValueError('x'))
        try:
            w.get()
        except ValueError:
            pass


def watchers(loop, r):
    makers = [
        lambda: loop.io(r, core.READ), lambda: loop.timer(10), lambda: loop.timer(0.001, 0.001),
        lambda: loop.signal(signal.SIGUSR2), loop.idle, loop.prepare, loop.check, loop.fork,
        loop.async_, lambda: loop.stat('/tmp', 10.0),
    ]
    if loop.default:
        makers.append(lambda: loop.child(os.getpid()))
    for make in makers:
        for i in range(N // 4):
            w = make()
            w.start(f, i)
            if i % 3 == 0:
                w.stop()
            if i % 2 == 0:
                w.close()
            del w  # the active, unclosed ones stay alive until the loop ends
        H.sleep(0) if loop.default else loop.run(nowait=True)


def timers_fire(loop):
    hits = []
    for i in range(N):
        t = loop.timer(0)
        t.start(hits.append, i)
    H.sleep(0.01)
    assert len(hits) == N


def callbacks_and_spawn():
    out = []
    for i in range(N):
        H.spawn_raw(out.append, i)
        cb = H.get_hub().loop.run_callback(out.append, -i)
        if i % 2:
            cb.stop()
    H.sleep(0)
    H.sleep(0)


def pool_and_resolvers(hub):
    tp = hub.threadpool
    for i in range(N // 2):
        assert tp.apply(abs, (-i,)) == i
    pool = ThreadPool(2)
    assert pool.map(abs, range(-20, 0)) == list(range(20, 0, -1))
    pool.kill()
    from gevent_c.resolver_thread import Resolver as TR
    from gevent_c.socket import BlockingResolver
    for R in (TR, BlockingResolver):
        res = R()
        for _ in range(10):
            res.gethostbyname('127.0.0.1')
            res.getaddrinfo('127.0.0.1', 80)
        res.close()
    try:
        from gevent_c.resolver_ares import Resolver as AR
    except ImportError:
        return
    res = AR(servers=['127.0.0.1'], timeout=0.2, tries=1)
    for _ in range(20):
        res.gethostbyname('127.0.0.1')
        res.getaddrinfo('127.0.0.1', 80, socket.AF_INET)
        res.gethostbyname_ex('::1', socket.AF_INET6)
    res.close()


def thread_hubs():
    def body():
        H.sleep(0.001)
        H.get_hub().threadpool.apply(abs, (-1,))
        t = H.get_hub().loop.timer(10)
        t.start(f)   # left active: the hub is destroyed with it
    for _ in range(10):
        th = threading.Thread(target=body)
        th.start()
        th.join()
    # and one destroyed explicitly
    th = threading.Thread(target=lambda: (H.sleep(0), H.get_hub().destroy()))
    th.start()
    th.join()


def private_loops():
    for _ in range(20):
        lp = core.loop(default=False)
        r, w = os.pipe()
        io = lp.io(r, core.READ)
        io.start(f)
        t = lp.timer(10)
        t.start(f)
        lp.run_callback(f)
        lp.run(nowait=True)
        os.close(r)            # fd closed under an active io watcher
        lp.run(nowait=True)
        lp.destroy()           # destroyed with live watchers
        io.stop(), t.close()   # inert afterwards
        os.close(w)


def main():
    signal.signal(signal.SIGUSR2, lambda *a: None)
    hub = H.get_hub()
    r, w = os.pipe()
    waiters(hub)
    watchers(hub.loop, r)
    private = core.loop(default=False)
    watchers(private, r)
    private.destroy()
    timers_fire(hub.loop)
    callbacks_and_spawn()
    pool_and_resolvers(hub)
    thread_hubs()
    private_loops()
    os.close(r)
    os.close(w)
    H.sleep(0.01)
    hub.destroy(destroy_loop=True)
    H.set_hub(None)
    gc.collect()
    # Pool workers of destroyed hubs exit after they are told to (they are
    # detached native threads); one still exiting when the process ends
    # takes its pool state's last reference with it, which memcheck would
    # report as definitely lost.  Let them finish before the leak check.
    import time
    time.sleep(0.5)
    print('workload done')


if __name__ == '__main__':
    main()
