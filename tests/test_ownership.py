"""Ownership: a hub destroys only a loop it owns (one it created, or its
thread's kept loop); the default loop is the main thread's alone; the
handoff and the dispatch switch only into greenlets of the loop's own
thread; a hub whose thread has exited may be destroyed from another one.
Each scenario runs in a fresh interpreter (docs/design.md, "Threads").
"""
import textwrap

PRELUDE = '''
import threading, time
import gevent_c.hub as H
from gevent_c import core

def in_thread(f):
    th = threading.Thread(target=f); th.start(); th.join()

def loop_left_by_thread(then=None):
    # a thread runs its own hub once, then then(hub) (returning the hub to
    # look at); the loop of that hub, after the thread has exited
    loops = []
    def f():
        h = H.get_hub()
        H.sleep(0.001)
        if then is not None:
            h = then(h)
        loops.append(h.loop)
    in_thread(f)
    return loops[0]

def wait_in_thread(t, keep, catch, errors):
    # a thread waits (hub.wait) on watcher t with its own hub, whose loop a
    # `keep`-second timer keeps running; what `catch` catches goes to
    # errors; returns the thread once it is waiting
    ready = threading.Event()
    def f():
        h2 = H.get_hub()
        k = h2.loop.timer(keep); k.start(lambda: None)
        ready.set()
        try:
            h2.wait(t)
        except catch as e:
            errors.append(e)
    th = threading.Thread(target=f); th.start()
    ready.wait(5)
    return th
'''


def _ok(run_py, code, timeout=20):
    # nothing may be reported either (an error in a thread's exit guard is
    # only printed as "Exception ignored")
    p = run_py(PRELUDE + textwrap.dedent(code), timeout=timeout)
    assert p.returncode == 0 and p.stdout.strip().endswith('OK'), (p.returncode, p.stdout, p.stderr)
    assert 'Traceback' not in p.stderr and 'Exception ignored' not in p.stderr, p.stderr
    return p.stdout


# -- a thread's exit destroys only the loop its hub owns ---------------------

def test_thread_default_hub_leaves_main_default_loop(run_py):
    _ok(run_py, '''
        hub = H.get_hub()
        H.sleep(0.001)
        seen = []
        def f():
            h = H.Hub(default=True)
            H.set_hub(h)
            seen.append(h.loop is hub.loop and h.loop.default)
        in_thread(f)
        assert seen == [True], seen
        assert hub.loop.default, repr(hub.loop)   # not destroyed by the thread
        H.sleep(0.01)
        print('OK')
    ''')


def test_thread_shared_loop_not_destroyed(run_py):
    _ok(run_py, '''
        for how in ('Hub(loop=L)', 'set_loop(L)'):
            L = core.loop(default=False)
            def f():
                if how == 'set_loop(L)':
                    H.set_loop(L)
                    h = H.get_hub()
                else:
                    h = H.Hub(loop=L)
                    H.set_hub(h)
                assert h.loop is L
            in_thread(f)
            assert 'destroyed' not in repr(L), (how, repr(L))
            h = H.Hub(loop=L)
            t = L.timer(0.001)
            L.run_callback(lambda: None)
            L.run()                    # still usable
            L.destroy()
        print('OK')
    ''')


def test_thread_own_loop_destroyed_at_exit(run_py):
    # the rule's other side: what a thread's hub created goes with it
    _ok(run_py, '''
        loop = loop_left_by_thread()
        assert not loop.default and 'destroyed' in repr(loop), repr(loop)
        print('OK')
    ''')


def test_kept_loop_stays_owned(run_py):
    # destroy(destroy_loop=False) keeps the loop for the thread's next hub,
    # which owns it: the thread's exit destroys it
    _ok(run_py, '''
        def keep(h):
            l = h.loop
            h.destroy(destroy_loop=False)
            h2 = H.get_hub()
            assert h2.loop is l
            H.sleep(0.001)
            return h2
        loop = loop_left_by_thread(keep)
        assert 'destroyed' in repr(loop), repr(loop)
        print('OK')
    ''')


# -- the handoff and the dispatch switch stay in the loop's thread -----------

def test_wait_on_another_threads_loop(run_py):
    _ok(run_py, '''
        import sys
        hub = H.get_hub()
        H.sleep(0.001)               # the main hub is now inside run()
        t = hub.loop.timer(0.05)
        errors, results = [], []
        th = wait_in_thread(t, 0.5, Exception, errors)
        def sleeper():
            for i in range(5):
                H.sleep(0.05)
            results.append('slept')
        g = H.spawn_raw(sleeper)
        H.sleep(0.4)
        th.join(5)
        assert results == ['slept'], results
        assert len(errors) == 1 and isinstance(errors[0], H.InvalidThreadUseError), errors
        print('OK')
    ''')


# -- a dead thread's hub can be destroyed ------------------------------------

def test_destroy_hub_of_dead_thread(run_py):
    _ok(run_py, '''
        import os
        box = []
        def f():
            h = H.Hub()                # not the thread's hub: no exit guard
            t = h.loop.timer(0.001)
            g = H.spawn_raw if False else None
            import greenlet
            def waiter():
                h.wait(t)
            gr = greenlet.greenlet(waiter)
            gr.switch()                # the hub runs its loop, then
            box.append(h)              # the timer fires and waiter ends
        in_thread(f)
        h = box[0]
        loop = h.loop
        fd = loop.fileno()
        assert fd is not None
        h.destroy()                    # the owner thread is gone: allowed
        assert h.loop is None
        assert 'destroyed' in repr(loop), repr(loop)
        try:
            os.fstat(fd)
        except OSError:
            pass                       # the loop's epoll fd was released
        else:
            # the number may have been reused by now; only check it is
            # no longer the loop's
            assert loop.fileno() is None
        print('OK')
    ''')


def test_destroy_hub_of_live_thread_refused(run_py):
    _ok(run_py, '''
        box, go = [], threading.Event()
        def f():
            box.append(H.get_hub())
            go.wait(5)
        th = threading.Thread(target=f); th.start()
        while not box:
            time.sleep(0.01)
        try:
            box[0].destroy()
        except H.InvalidThreadUseError:
            pass
        else:
            raise AssertionError('destroyed a live thread\\'s hub')
        go.set(); th.join()
        print('OK')
    ''')


def test_dispatch_never_switches_into_another_thread(run_py):
    # a greenlet of T2 waits (directly) on a watcher of a loop that is not
    # running yet; the main thread then runs that loop: the event is
    # reported as InvalidThreadUseError, not switched across threads
    _ok(run_py, '''
        L = core.loop(default=False)
        t = L.timer(0.01)
        th = wait_in_thread(t, 0.3, H.LoopExit, [])
        time.sleep(0.1)               # T2 is waiting in its own loop now
        reported = []
        L.error_handler = lambda *a: reported.append(a[1])
        L.run()
        th.join(5)
        assert reported == [H.InvalidThreadUseError], reported
        print('OK')
    ''')


def test_handoff_never_switches_into_another_thread(run_py):
    # g1 (main thread) wakes in the same pass as, and before, a greenlet of
    # T2 that waits on a watcher of the main loop; when g1 blocks again the
    # handoff must not switch into T2's greenlet (greenlet.error surfaced in
    # g1's sleep): the hub dispatches that event and reports it instead
    _ok(run_py, '''
        import io
        hub = H.get_hub()              # not running yet: T2 may wait on its loop
        stream = io.StringIO()
        hub.exception_stream = stream
        t = hub.loop.timer(0.001)
        t.priority = -1                # dispatched after g1's timer
        th = wait_in_thread(t, 0.3, H.LoopExit, [])
        time.sleep(0.1)                # T2 waits; t is overdue
        order = []
        def g1f():
            H.sleep(0.001)
            order.append('woke')
            H.sleep(0.001)             # the handoff would take t here
            order.append('done')
        H.spawn_raw(g1f)
        hub.loop.run_callback(time.sleep, 0.01)   # both timers due in one pass
        H.sleep(0.05)
        th.join(5)
        assert order == ['woke', 'done'], (order, stream.getvalue())
        assert 'InvalidThreadUseError' in stream.getvalue(), stream.getvalue()
        print('OK')
    ''')
