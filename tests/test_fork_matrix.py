"""fork() without reinit(), from each state that
holds something across the fork: a busy thread pool, a pending resolver
query (thread resolver, c-ares resolver), another thread's hub polling, and
a fork from a greenlet that is not the main one.

In the child, with no ``reinit()`` call, the hub works at once (``sleep``, a
timer, a Waiter round trip), ``hub.join(timeout=2)`` returns True, nothing is
printed to stderr (no "Exception ignored"), and no fd of the parent's other
loops stays open.  The child reports through its exit code (``os._exit``),
which the parent checks.  Each case runs in its own subprocess (the fork
happens inside it).
"""
import subprocess
import sys
import textwrap

import pytest

import _util

PRELUDE = r'''
import os, signal, socket, sys, threading, time, traceback, warnings
# CPython 3.12+ warns about any fork() in a process with threads (it cannot
# know what they hold); what is checked here is that gevent_c prints nothing
warnings.filterwarnings('ignore', message='This process .* is multi-threaded',
                        category=DeprecationWarning)
import gevent_c.hub as H
import gevent_c.core as core

hub = H.get_hub()
loop = hub.loop
CASE = sys.argv[1]
results = []


started = threading.Semaphore(0)


def sleeper(secs):
    """A pool task that says it runs, then blocks."""
    started.release()
    time.sleep(secs)


def wait_started(n):
    """Until n tasks run: a fork while a worker thread is still starting
    (allocating its thread state without the GIL) hangs the child in its
    first malloc under GCC 12's ASan runtime, whose allocator is not
    fork-safe (see test_fork_shared_state.py)."""
    for _ in range(n):
        assert started.acquire(timeout=10), 'a pool task did not start'


def fds():
    """{fd: target} of this process's open fds."""
    out = {}
    for name in os.listdir('/proc/self/fd'):
        try:
            out[int(name)] = os.readlink('/proc/self/fd/' + name)
        except OSError:
            pass
    return out


def hub_works():
    """The hub works at once: sleep, a timer, a Waiter round trip."""
    H.sleep(0.01)
    tm = loop.timer(0.001)
    hub.wait(tm)
    tm.close()
    w = H.Waiter(hub)
    loop.run_callback(w.switch, 'round trip')
    assert w.get() == 'round trip'


def in_child(extra_check=None):
    """Runs in the forked child, in the main greenlet; never returns."""
    code = 0
    try:
        hub_works()
        if extra_check is not None:
            extra_check()
        if not hub.join(timeout=2):
            print('child: join(timeout=2) returned False; pool=%r' % (hub._threadpool,))
            code = 4
        else:
            hub_works()             # and again, after join
    except BaseException:
        print('child: ' + traceback.format_exc())
        code = 3
    sys.stdout.flush()
    os._exit(code)


def fork_and_wait(extra_check=None):
    """fork (no reinit); the child runs in_child(); the parent returns the
    child's exit code (or 'hung' after 20 s)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        in_child(extra_check)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        p, status = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return 'hung'
'''

CASES = {
    'busy_pool': r'''
        pool = hub.threadpool
        res = pool.spawn(sleeper, 0.5)          # a task in flight in a worker
        wait_started(1)
        print('child exit', fork_and_wait())
        res.get()
    ''',
    'busy_pool_many': r'''
        pool = hub.threadpool
        rs = [pool.spawn(sleeper, 0.3) for _ in range(pool.maxsize + 3)]
        wait_started(pool.maxsize)
        print('child exit', fork_and_wait())
        # the parent's pool still delivers (the child ran its hub meanwhile)
        from gevent_c.timeout import Timeout
        try:
            for r in rs:
                r.get(timeout=10)
        except Timeout:
            print('parent: pool results lost after the fork')
            sys.exit(5)
    ''',
    'thread_resolver_pending': r'''
        # A slow lookup: the blocking call the resolver runs in the pool is
        # made slow (no DNS dependence), so the query is pending at fork time.
        import gevent_c.resolver_thread as rt

        class SlowSocket(object):
            def __getattr__(self, name):
                return getattr(socket, name)

            @staticmethod
            def gethostbyname(name):
                sleeper(0.5)
                return '127.0.0.1'

        rt._socket = SlowSocket()
        r = rt.Resolver(hub)
        got = []

        def query():
            try:
                got.append(r.gethostbyname('slow.example'))
            except Exception as ex:
                got.append(ex)

        H.spawn_raw(query)
        H.sleep(0.05)
        wait_started(1)
        print('child exit', fork_and_wait())
        while not got:
            H.sleep(0.01)
        print('parent got', got)
    ''',
    'ares_resolver_pending': r'''
        import gevent_c.resolver_ares as ra
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # never answers
        silent.bind(('127.0.0.1', 0))
        server = '127.0.0.1:%d' % silent.getsockname()[1]
        r = ra.Resolver(hub, use_environ=False, servers=[server], timeout=0.3, tries=1)
        got = []

        def query():
            try:
                got.append(r.gethostbyname('pending.example'))
            except Exception as ex:
                got.append(type(ex).__name__)

        H.spawn_raw(query)
        H.sleep(0.05)
        print('child exit', fork_and_wait())
        while not got:
            H.sleep(0.01)
        r.close()
        print('parent got', got)
    ''',
    'other_thread_hub_polling': r'''
        base = fds()
        started = threading.Event()
        stop = threading.Event()

        def poller():
            H.get_hub()
            started.set()
            while not stop.is_set():
                H.sleep(0.002)

        t = threading.Thread(target=poller)
        t.start()
        started.wait(10)
        H.sleep(0.05)
        theirs = {fd: tgt for fd, tgt in fds().items() if base.get(fd) != tgt}

        def no_foreign_fds():
            now = fds()
            left = {fd: tgt for fd, tgt in theirs.items() if now.get(fd) == tgt}
            # the child may reuse a number for its own new fds; the count is
            # the robust part: no more fds than before the thread's hub existed
            assert len(now) <= len(base) + 1, ('fds', base, now, 'theirs', theirs)

        print('child exit', fork_and_wait(no_foreign_fds))
        stop.set()
        t.join(10)
    ''',
    'non_main_greenlet': r'''
        codes = []

        def body():
            codes.append(fork_and_wait_in_greenlet())

        def fork_and_wait_in_greenlet():
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                # the child is inside this greenlet: the hub works here, then
                # the main greenlet (below) finishes with join()
                try:
                    hub_works()
                    child_ok.append(True)
                except BaseException:
                    print('child: ' + traceback.format_exc())
                    sys.stdout.flush()
                    os._exit(3)
                return None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                p, status = os.waitpid(pid, os.WNOHANG)
                if p == pid:
                    return os.waitstatus_to_exitcode(status)
                H.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            return 'hung'

        child_ok = []
        me = os.getpid()
        H.spawn_raw(body)
        while not codes and not child_ok:
            H.sleep(0.01)
        if os.getpid() != me:
            # the child, back in its main greenlet
            code = 0
            try:
                hub_works()
                if not hub.join(timeout=2):
                    print('child: join(timeout=2) returned False')
                    code = 4
            except BaseException:
                print('child: ' + traceback.format_exc())
                code = 3
            sys.stdout.flush()
            os._exit(code)
        print('child exit', codes[0])
    ''',
}


def _have_ares():
    try:
        import gevent_c.resolver_ares  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.timeout(120)
@pytest.mark.parametrize('case', sorted(CASES))
def test_fork_without_reinit(case):
    if case.startswith('ares') and not _have_ares():
        pytest.skip('gevent_c.resolver_ares is not importable')
    code = PRELUDE + textwrap.dedent(CASES[case])
    p = subprocess.run(
        [sys.executable, '-X', 'faulthandler', '-c', code, case],
        cwd=_util.TESTS, env=_util._clean_env(), capture_output=True, text=True,
        timeout=60)
    assert p.returncode == 0, 'exited %r\n--- stdout ---\n%s\n--- stderr ---\n%s' % (
        p.returncode, p.stdout[-4000:], p.stderr[-6000:])
    assert 'child exit 0' in p.stdout.splitlines(), p.stdout[-4000:] + p.stderr[-4000:]
    assert p.stderr == '', p.stderr[-6000:]
