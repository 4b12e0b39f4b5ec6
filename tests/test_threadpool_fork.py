"""ThreadPool fork safety (docs/semantics.md, 'ThreadPool' and 'signal and
reinit'): the pool works again after reinit() in a forked child. Each test runs in a
fresh interpreter that forks; the child reports through a pipe and its exit
status, and is killed if it hangs."""
import textwrap


PROLOGUE = '''
import os, sys, time, signal, threading, traceback
import gevent_c.hub as H
from gevent_c.threadpool import ThreadPool
import _util

def pools_started(timeout=10):
    """Until no worker of any pool is still starting.  A worker allocates its
    thread state without the GIL as it starts; forked in that instant, the
    child of an ASan build (GCC 12's allocator takes no locks around fork,
    unlike glibc's malloc) inherits a held allocator lock and hangs (F11)."""
    import gc

    def starting(pool):
        try:
            return pool._starting
        except Exception:   # not initialised, or killed: no workers to wait for
            return 0
    pools = [o for o in gc.get_objects() if isinstance(o, ThreadPool)]
    deadline = time.time() + timeout
    while any(starting(p) for p in pools):
        assert time.time() < deadline, 'pool workers did not start'
        time.sleep(0.001)


def in_child(child_body, timeout=10):
    """Fork; run child_body(write) in the child (exit 0 on success, 2 on an
    exception). Return (exit code, data written), killing a hung child."""
    pools_started()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            signal.alarm(timeout)  # a hung child dies of SIGALRM
            child_body(lambda data: os.write(w, data))
        except BaseException:
            traceback.print_exc()
            code = 2
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    status = _util.wait_child(pid, timeout + 5)
    if status is None:
        raise AssertionError('child hung')
    data = b''
    while True:
        chunk = os.read(r, 1024)
        if not chunk:
            break
        data += chunk
    os.close(r)
    return os.waitstatus_to_exitcode(status), data
'''


def _script(body):
    return PROLOGUE + textwrap.dedent(body)


def test_check_reinit_threadpool_works_in_child(check_py):
    # check (3.8): a fresh interpreter first uses hub.threadpool. Then fork. The
    # child runs H.reinit(); assert hub.threadpool.spawn(lambda: 1).get() == 1;
    # H.sleep(0.01) and exits 0. The parent sees exit status 0 within 10 s, and
    # its own threadpool still works.
    out = check_py(_script('''
        hub = H.get_hub()
        tp = hub.threadpool
        assert tp.spawn(lambda: 0).get() == 0
        def child(write):
            H.reinit()
            assert hub.threadpool.spawn(lambda: 1).get() == 1
            H.sleep(0.01)
            write(b'ok')
        t0 = time.time()
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'ok', data
        assert time.time() - t0 < 10
        assert hub.threadpool is tp
        assert tp.spawn(lambda: 2).get() == 2
        print('ok')
    '''))
    assert out.strip() == 'ok'


def test_child_pool_starts_afresh_size_one(check_py):
    # in the child the old workers do not exist; the pool discards its
    # queue and worker records and starts afresh when next used
    # [V: a child after fork ran a task; size 1].
    out = check_py(_script('''
        hub = H.get_hub()
        tp = hub.threadpool
        H.wait([tp.spawn(time.sleep, 0.05) for _ in range(3)])
        assert tp.size == 3, tp.size
        def child(write):
            H.reinit()
            r = tp.spawn(lambda: threading.get_ident())
            ident = r.get()
            assert ident != threading.get_ident()
            assert tp.size == 1, tp.size
            assert len(tp) == 0, len(tp)
            write(b'ok')
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'ok'
        # the parent is unaffected
        assert tp.size == 3, tp.size
        assert tp.map(lambda x: x + 1, range(6)) == [1, 2, 3, 4, 5, 6]
        print('ok')
    '''))
    assert out.strip() == 'ok'


def test_child_of_full_pool_is_not_blocked(check_py):
    # At fork time the pool (maxsize=1) has an outstanding task: its slot must
    # not stay taken in the child, and the parent's task still completes.
    out = check_py(_script('''
        hub = H.get_hub()
        hub.threadpool_size = 1
        tp = hub.threadpool
        ev = threading.Event()
        r = tp.spawn(ev.wait, 5)
        H.sleep(0.02)
        assert len(tp) == 1
        def child(write):
            H.reinit()
            assert len(tp) == 0, len(tp)
            assert tp.spawn(lambda: 'child').get() == 'child'
            assert tp.apply(lambda: 'again') == 'again'
            write(b'ok')
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'ok'
        assert not r.ready()
        ev.set()
        assert r.get() is True
        assert len(tp) == 0
        print('ok')
    '''))
    assert out.strip() == 'ok'


def test_pool_not_on_hub_recovers_through_fork_watcher(check_py):
    # the pool watches for fork (a fork watcher with ref=False), so a
    # pool that reinit() does not know about recovers too.
    out = check_py(_script('''
        hub = H.get_hub()
        p = ThreadPool(2)
        assert p.apply(lambda: 1) == 1
        assert hub._threadpool is None
        def child(write):
            H.reinit()
            H.sleep(0.05)  # let the fork watcher run
            assert p.apply(lambda: 'child') == 'child'
            assert p.size == 1, p.size
            write(b'ok')
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'ok'
        assert p.apply(lambda: 'parent') == 'parent'
        print('ok')
    '''))
    assert out.strip() == 'ok'


def test_many_tasks_in_child(check_py):
    # the pool works again after reinit() in a forked child, for a
    # batch of tasks, errors included.
    out = check_py(_script('''
        hub = H.get_hub()
        hub.NOT_ERROR = tuple(hub.NOT_ERROR) + (KeyError,)
        tp = hub.threadpool
        assert tp.map(lambda x: x, range(20)) == list(range(20))
        def child(write):
            H.reinit()
            assert tp.map(lambda x: x * 2, range(100)) == [x * 2 for x in range(100)]
            def bad():
                raise KeyError('k')
            try:
                tp.apply(bad)
            except KeyError:
                pass
            else:
                raise AssertionError('no KeyError')
            assert sorted(tp.imap_unordered(lambda x: x, range(30))) == list(range(30))
            assert hub.join(timeout=5) is True
            write(b'ok')
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'ok'
        print('ok')
    '''))
    assert out.strip() == 'ok'


def test_resolver_works_in_child(check_py):
    # 3.8: after reinit the resolver works in the child (it uses the pool).
    out = check_py(_script('''
        hub = H.get_hub()
        assert hub.resolver.gethostbyname('127.0.0.1') == '127.0.0.1'
        def child(write):
            H.reinit()
            assert hub.resolver.gethostbyname('localhost') == '127.0.0.1'
            write(b'ok')
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'ok'
        assert hub.resolver.gethostbyname('127.0.0.1') == '127.0.0.1'
        print('ok')
    '''))
    assert out.strip() == 'ok'


def test_reinit_without_fork_keeps_in_flight_tasks(run_py):
    # reinit() in a process that did not fork (the fuzzer does it) must not
    # make the pool start afresh: the running worker's result would go to an
    # abandoned state nobody drains (the task never completes), and once the
    # pool is gone that worker posted to a freed async handle (F7).
    p = run_py('''
        import gc, time
        import gevent_c.hub as H
        from gevent_c.threadpool import ThreadPool
        pool = ThreadPool(2)
        r = pool.spawn(time.sleep, 0.05)
        H.sleep(0.01)          # a worker is running it
        H.reinit()             # the hub's own pool
        pool._on_fork()        # and this one
        assert r.get(timeout=5) is None
        r2 = pool.spawn(time.sleep, 0.05)
        H.sleep(0.01)
        pool._on_fork()
        pool.kill()
        del pool
        gc.collect()
        time.sleep(0.1)        # the worker finishes after the pool is gone
        print('ok')
    ''', timeout=30)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert 'ok' in p.stdout
