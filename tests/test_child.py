"""child watchers (docs/semantics.md, 'child'). They install SIGCHLD handling on the default loop,
which would race with subprocess use in the test process, so every test runs
in a fresh interpreter."""


def test_check_child_true_and_non_default_loop(check_py):
    # check: Popen(['true']) -> got == [(p.pid, 0)]; core.loop(default=False).child(1) -> TypeError
    out = check_py('''
        import subprocess
        import gevent_c.core as core
        import gevent_c.hub as H
        loop = H.get_hub().loop
        got = []
        p = subprocess.Popen(['true'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = loop.child(p.pid)
        c.start(lambda: got.append((c.rpid, c.rstatus)))
        H.sleep(0.5)
        assert got == [(p.pid, 0)], (got, p.pid)
        L = core.loop(default=False)
        try:
            L.child(1)
        except TypeError:
            pass
        else:
            raise AssertionError('child on a private loop accepted')
        print('ok')
    ''')
    assert 'ok' in out


def test_child_on_private_loop_message(check_py):
    check_py('''
        import gevent_c.core as core
        L = core.loop(default=False)
        try:
            L.child(1)
        except TypeError as e:
            assert str(e) == 'child watchers are only available on the default loop', str(e)
        else:
            raise AssertionError('accepted')
        L.destroy()
    ''')


def test_child_exit_status_3(check_py):
    # rstatus is the raw waitpid status
    check_py('''
        import os, subprocess
        import gevent_c.hub as H
        loop = H.get_hub().loop
        got = []
        p = subprocess.Popen(['sh', '-c', 'exit 3'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = loop.child(p.pid)
        c.start(lambda: got.append((c.rpid, c.rstatus)))
        for _ in range(100):
            H.sleep(0.01)
            if got:
                break
        assert len(got) == 1, got
        rpid, rstatus = got[0]
        assert rpid == p.pid
        assert os.WIFEXITED(rstatus), rstatus
        assert os.waitstatus_to_exitcode(rstatus) == 3, rstatus
    ''')


def test_child_killed_by_signal(check_py):
    check_py('''
        import os, signal, subprocess
        import gevent_c.hub as H
        loop = H.get_hub().loop
        got = []
        p = subprocess.Popen(['sleep', '10'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = loop.child(p.pid)
        c.start(lambda: got.append(c.rstatus))
        H.sleep(0.01)
        os.kill(p.pid, signal.SIGTERM)
        for _ in range(100):
            H.sleep(0.01)
            if got:
                break
        assert len(got) == 1, got
        assert os.WIFSIGNALED(got[0]) and os.WTERMSIG(got[0]) == signal.SIGTERM, got
    ''')


def test_child_attributes_and_repr(check_py):
    check_py('''
        import re, subprocess
        import gevent_c.hub as H
        loop = H.get_hub().loop
        p = subprocess.Popen(['sh', '-c', 'exit 3'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = loop.child(p.pid)
        assert c.pid == p.pid
        assert c.rpid == 0 and c.rstatus == 0, (c.rpid, c.rstatus)
        assert re.match(r'^<child at 0x[0-9a-f]+ pid=%d rstatus=0' % p.pid, repr(c)), repr(c)
        c.start(lambda: None)
        for _ in range(100):
            H.sleep(0.01)
            if c.rpid:
                break
        assert c.rpid == p.pid
        assert 'rstatus=%d' % c.rstatus in repr(c), repr(c)
    ''')


def test_child_pid_zero_any_child(check_py):
    check_py('''
        import os, subprocess
        import gevent_c.hub as H
        loop = H.get_hub().loop
        got = []
        c = loop.child(0)
        c.start(lambda: got.append((c.rpid, c.rstatus)))
        p = subprocess.Popen(['sh', '-c', 'exit 5'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            H.sleep(0.01)
            if got:
                break
        assert got and got[0][0] == p.pid, (got, p.pid)
        assert os.waitstatus_to_exitcode(got[0][1]) == 5, got
        c.stop()
    ''')


def test_child_several_children(check_py):
    check_py('''
        import os, subprocess
        import gevent_c.hub as H
        loop = H.get_hub().loop
        got = {}
        ws = []
        for code in (0, 1, 2, 3):
            p = subprocess.Popen(['sh', '-c', 'exit %d' % code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            c = loop.child(p.pid)
            c.start(lambda c=c: got.__setitem__(c.rpid, os.waitstatus_to_exitcode(c.rstatus)))
            ws.append((p.pid, code, c, p))  # keep p: Popen.__del__ would reap the child
        for _ in range(100):
            H.sleep(0.01)
            if len(got) == 4:
                break
        assert got == {pid: code for pid, code, _, _ in ws}, got
    ''')


def test_child_trace_stop_and_continue(check_py):
    # with trace, stop and continue are reported too.
    # gevent 26.9.0 (libev): statuses 0x137f (stopped), 0xffff (continued), 9 (killed).
    check_py('''
        import os, signal, subprocess, time
        import gevent_c.hub as H
        loop = H.get_hub().loop
        got = []
        p = subprocess.Popen(['sleep', '10'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = loop.child(p.pid, True)
        c.start(lambda: got.append(c.rstatus))
        def wait_for(n):
            for _ in range(100):
                H.sleep(0.01)
                if len(got) >= n:
                    return
        H.sleep(0.02)
        os.kill(p.pid, signal.SIGSTOP)
        wait_for(1)
        assert got and os.WIFSTOPPED(got[0]), got
        os.kill(p.pid, signal.SIGCONT)
        wait_for(2)
        assert len(got) == 2 and os.WIFCONTINUED(got[1]), got
        os.kill(p.pid, signal.SIGKILL)
        wait_for(3)
        assert len(got) == 3 and os.WIFSIGNALED(got[2]), got
    ''')


def test_child_without_trace_ignores_stop(check_py):
    check_py('''
        import os, signal, subprocess
        import gevent_c.hub as H
        loop = H.get_hub().loop
        got = []
        p = subprocess.Popen(['sleep', '10'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = loop.child(p.pid)
        c.start(lambda: got.append(c.rstatus))
        H.sleep(0.02)
        os.kill(p.pid, signal.SIGSTOP)
        H.sleep(0.1)
        assert got == [], got
        os.kill(p.pid, signal.SIGKILL)
        for _ in range(100):
            H.sleep(0.01)
            if got:
                break
        assert len(got) == 1 and os.WIFSIGNALED(got[0]), got
    ''')


def test_child_watcher_keeps_hub_waiting(check_py):
    # a started (referenced) child watcher is an active watcher: hub.wait returns
    # when the child exits
    check_py('''
        import os, subprocess, time
        import gevent_c.hub as H
        hub = H.get_hub()
        p = subprocess.Popen(['sh', '-c', 'sleep 0.05; exit 7'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = hub.loop.child(p.pid)
        t0 = time.monotonic()
        hub.wait(c)
        assert os.waitstatus_to_exitcode(c.rstatus) == 7, c.rstatus
        assert time.monotonic() - t0 < 5
    ''')


def test_child_common_contract(check_py):
    # the common watcher contract for child (not in test_core_module.py's in-process parametrization)
    check_py('''
        import gc, os, subprocess, weakref
        import gevent_c.hub as H
        loop = H.get_hub().loop
        c = loop.child(os.getpid())
        assert (c.active, c.pending, c.callback, c.args, c.ref, c.priority) == (False, False, None, None, True, 0)
        f = lambda *a: None
        c.start(f, 1, 2)
        assert c.active and c.args == (1, 2) and c.callback is f
        try:
            c.start(5)
        except TypeError:
            pass
        else:
            raise AssertionError
        r = weakref.ref(c)
        del c
        gc.collect()
        c = r()
        assert c is not None and c.active
        c.stop(); c.stop()
        assert c.callback is None and c.args is None and not c.active
        c.close(); c.close()
        try:
            c.start(f)
        except ValueError as e:
            assert str(e) == 'operation on closed watcher', e
        else:
            raise AssertionError
        with loop.child(os.getpid()) as c2:
            c2.start(f)
        assert not c2.active
        c3 = loop.child(os.getpid(), ref=False)
        assert c3.ref is False
    ''')


def test_child_error_in_callback(check_py):
    check_py('''
        import io, subprocess
        import gevent_c.hub as H
        hub = H.get_hub()
        s = io.StringIO()
        hub.exception_stream = s
        p = subprocess.Popen(['true'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = hub.loop.child(p.pid)
        c.start(lambda: 1 / 0)
        for _ in range(100):
            H.sleep(0.01)
            if 'failed' in s.getvalue():
                break
        assert s.getvalue().count('failed with ZeroDivisionError') == 1, s.getvalue()
        assert '<child at 0x' in s.getvalue(), s.getvalue()
    ''')
