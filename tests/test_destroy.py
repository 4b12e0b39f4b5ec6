"""Hub.destroy(destroy_loop=None) and loop.destroy() via the hub
(docs/semantics.md, 'run, join and destroy').

Every check runs in a fresh interpreter (it ends the hub's life).
"""


def test_destroy_keeps_default_loop(check_py):
    check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        H.sleep(0.001)
        l = hub.loop
        assert hub.destroy() is None
        assert hub.loop is None
        assert hub.dead
        assert H._get_hub() is None
        assert l.default is True            # kept, not destroyed
        h2 = H.get_hub()
        assert h2 is not hub
        assert h2.loop is l                 # the saved loop is reused
        assert hub.destroy() is None        # second destroy is a no-op
        assert 'destroyed' in repr(hub), repr(hub)
        H.sleep(0.001)
    ''', timeout=10)


def test_destroy_unstarted_hub(check_py):
    check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        hub.destroy()
        assert hub.loop is None
        assert H._get_hub() is None
        H.sleep(0.001)
    ''', timeout=10)


def test_destroy_loop_true_then_fresh_default(check_py):
    check_py('''
        import gevent_c.hub as H
        h2 = H.get_hub()
        H.sleep(0.001)
        l = h2.loop
        h2.destroy(destroy_loop=True)
        assert h2.loop is None
        assert l.default is False
        assert 'destroyed' in repr(l), repr(l)
        try:
            l.run()
        except ValueError:
            pass
        else:
            raise AssertionError('run() on a destroyed loop')
        h3 = H.get_hub()
        assert h3.loop is not l
        assert h3.loop.default is True
        H.sleep(0.001)
        log = []
        H.spawn_raw(log.append, 1)
        H.sleep(0.001)
        assert log == [1]
    ''', timeout=10)


def test_destroy_in_thread(check_py):
    check_py('''
        import threading
        import gevent_c.hub as H
        res = {}
        def target():
            h = H.get_hub()
            H.sleep(0.01)
            l = h.loop
            h.destroy()
            res['loop_none'] = h.loop is None
            res['default'] = l.default
            try:
                l.run()
            except ValueError:
                res['run'] = 'ValueError'
            else:
                res['run'] = 'no error'
            res['cleared'] = H._get_hub() is None
        t = threading.Thread(target=target)
        t.start(); t.join(10)
        assert res == {'loop_none': True, 'default': False, 'run': 'ValueError',
                       'cleared': True}, res
        H.sleep(0.001)   # main's hub unaffected
    ''', timeout=15)


def test_destroy_from_callback_is_runtime_error(check_py):
    check_py('''
        import io
        import gevent_c.hub as H
        hub = H.get_hub()
        s = io.StringIO()
        hub.exception_stream = s
        hub.loop.run_callback(hub.destroy)
        H.sleep(0.01)
        lines = [l for l in s.getvalue().splitlines() if l.strip()]
        assert lines and lines[-1].endswith('failed with RuntimeError'), s.getvalue()
        assert hub.loop is not None
        assert not hub.dead
        H.sleep(0.001)
    ''', timeout=10)


def test_destroy_with_live_watchers(check_py):
    check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        t = hub.loop.timer(5)
        t.start(print)
        cb = hub.loop.run_callback(print, 'never')
        g = H.spawn_raw(H.sleep, 10)
        H.sleep(0)
        hub.destroy(destroy_loop=True)
        try:
            t.start(print)
        except ValueError:
            pass
        else:
            raise AssertionError('start on a watcher of a destroyed loop')
        t.stop()
        t.close()
        H.sleep(0.001)
    ''', timeout=10)


def test_destroy_while_greenlets_wait_then_exit(run_py):
    p = run_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        w = H.Waiter()
        g = H.spawn_raw(w.get)
        H.sleep(0)
        hub.destroy(destroy_loop=True)
        print('done')
    ''', timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == 'done'
    assert 'Fatal' not in p.stderr and 'Assertion' not in p.stderr, p.stderr


def test_waiting_on_a_destroyed_hub_raises(check_py):
    # greenlet turns a switch into a dead greenlet into a switch to its
    # parent: without a check, Waiter(dead_hub).get() returned () at once and
    # a full ThreadPool of a dead hub spun forever (found by the API fuzzer)
    out = check_py('''
        import time
        import gevent_c.hub as H
        from gevent_c.threadpool import ThreadPool
        hub = H.get_hub()
        pool = ThreadPool(1)
        pool.spawn(time.sleep, 0.2)
        hub.destroy()
        H.get_hub()
        for f in (lambda: H.Waiter(hub).get(), lambda: pool.spawn(time.sleep, 0)):
            try:
                f()
            except H.LoopExit as e:
                print('LoopExit', 'destroyed' in str(e))
    ''')
    assert out.split() == ['LoopExit', 'True', 'LoopExit', 'True']
