"""fork watchers (docs/semantics.md, 'fork') and loop.reinit() after os.fork(). Each test runs in a
fresh interpreter that forks; the forked child reports through a pipe and its
exit status."""



# Shared prologue for the scripts: run `child_body` in a forked child, which
# exits 0 when it completes without error, and return (status, pipe data).
PROLOGUE = '''
import os, sys, traceback
import gevent_c.core as core
import gevent_c.hub as H
def in_child(child_body):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            import signal
            signal.alarm(5)  # a hung child must not keep the pipes open
            os.close(r)
            child_body(w)
        except BaseException:
            traceback.print_exc()
            code = 2
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    data = b''
    while True:
        chunk = os.read(r, 1024)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), data

def fork_watcher_run(loop, payload, child_body, settle=lambda: H.sleep(0.01), stop=False):
    # Start a fork watcher on loop that writes payload to the child's pipe
    # (stopped again before the fork if stop), fork, run child_body(w) in
    # the child; return what the child wrote.
    state = {}
    fw = loop.fork()
    fw.start(lambda: os.write(state['w'], payload))
    settle()
    if stop:
        fw.stop()
    def child(w):
        state['w'] = w
        child_body(w)
    code, data = in_child(child)
    assert code == 0, code
    return data
'''


def _script(body):
    import textwrap
    return PROLOGUE + textwrap.dedent(body)


def test_check_fork_watcher_fires_in_child_only(check_py):
    # check: the child calls H.reinit(); H.sleep(0.05) and exits; the parent reads
    # b'forked' and its own fork watcher did not fire
    out = check_py(_script('''
        loop = H.get_hub().loop
        parent_hits = []
        state = {}
        fw = loop.fork()
        def cb():
            if 'w' in state:
                os.write(state['w'], b'forked')
            else:
                parent_hits.append(1)
        fw.start(cb)
        H.sleep(0.01)
        def child(w):
            state['w'] = w
            H.reinit()
            H.sleep(0.05)
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'forked', data
        H.sleep(0.05)
        assert parent_hits == [], parent_hits
        print('ok')
    '''))
    assert 'ok' in out


def test_fork_watcher_without_reinit_fires_on_next_iteration(check_py):
    # "after reinit(), or at the latest on the next loop iteration in the child"
    check_py(_script('''
        data = fork_watcher_run(H.get_hub().loop, b'forked', lambda w: H.sleep(0.05))
        assert data == b'forked', data
    '''))


def test_loop_reinit_fires_fork_watcher(check_py):
    check_py(_script('''
        loop = H.get_hub().loop
        def child(w):
            loop.reinit()
            H.sleep(0.02)
        data = fork_watcher_run(loop, b'F', child)
        assert data == b'F', data
    '''))


def test_fork_watcher_fires_once_in_child(check_py):
    check_py(_script('''
        def child(w):
            H.reinit()
            for _ in range(5):
                H.sleep(0.01)
        data = fork_watcher_run(H.get_hub().loop, b'F', child)
        assert data == b'F', data
    '''))


def test_stopped_fork_watcher_does_not_fire(check_py):
    check_py(_script('''
        def child(w):
            H.reinit()
            H.sleep(0.02)
            os.write(w, b'done')
        data = fork_watcher_run(H.get_hub().loop, b'F', child, stop=True)
        assert data == b'done', data
    '''))


def test_loop_usable_in_child_after_reinit(check_py):
    # timers, io and callbacks all work in the child after reinit()
    check_py(_script('''
        loop = H.get_hub().loop
        t = loop.timer(5)
        t.start(lambda: None)      # an active handle carried across the fork
        r0, w0 = os.pipe()
        io0 = loop.io(r0, 1)
        io0.start(lambda: None)
        H.sleep(0.01)
        def child(w):
            H.reinit()
            log = []
            t2 = loop.timer(0.01)
            t2.start(log.append, 'timer')
            r, wp = os.pipe()
            iow = loop.io(r, 1)
            iow.start(lambda: (log.append('io'), iow.stop()))
            os.write(wp, b'x')
            loop.run_callback(log.append, 'cb')
            for _ in range(10):
                H.sleep(0.01)
                if len(log) == 3:
                    break
            assert sorted(log) == ['cb', 'io', 'timer'], log
            os.write(w, b'ok')
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'ok', data
        t.stop(); io0.close()
    '''))


def test_fork_watcher_private_loop(check_py):
    check_py(_script('''
        L = core.loop(default=False)
        def child(w):
            L.reinit()
            L.run(nowait=True)
        data = fork_watcher_run(L, b'P', child, settle=lambda: L.run(nowait=True))
        assert data == b'P', data
        L.run(nowait=True)
    '''))


def test_signal_watcher_works_in_child_after_reinit(check_py):
    check_py(_script('''
        import signal
        loop = H.get_hub().loop
        sw = loop.signal(signal.SIGUSR2)
        sw.start(lambda: None)
        H.sleep(0.01)
        def child(w):
            H.reinit()
            hits = []
            s2 = loop.signal(signal.SIGUSR2)
            s2.start(hits.append, 1)
            os.kill(os.getpid(), signal.SIGUSR2)
            for _ in range(10):
                H.sleep(0.01)
                if hits:
                    break
            assert hits == [1], hits
            os.write(w, b'ok')
        code, data = in_child(child)
        assert code == 0, code
        assert data == b'ok', data
        sw.stop()
    '''))


def test_fork_watcher_before_hub_ever_ran(check_py):
    # the same as the check, but the hub has never run in the parent before
    # fork(), so reinit() cannot meet a suspended run()
    check_py(_script('''
        def child(w):
            H.reinit()
            H.sleep(0.05)
        data = fork_watcher_run(H.get_hub().loop, b'forked', child, settle=lambda: None)
        assert data == b'forked', data
    '''))
