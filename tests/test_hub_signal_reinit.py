"""H.signal, H.reinit and H.idle (docs/semantics.md, 'signal and reinit', 'sleep')."""
import os
import signal as _signal

import greenlet
import pytest

import gevent_c.hub as H


def test_signal_handler_runs_in_new_greenlet(hub):
    calls = []

    def handler(*args, **kwargs):
        g = greenlet.getcurrent()
        calls.append((args, kwargs, g is not hub and g.parent is hub))

    s = H.signal(_signal.SIGUSR1, handler, 1, k=2)
    try:
        assert s.ref is False
        os.kill(os.getpid(), _signal.SIGUSR1)
        H.sleep(0.1)
        assert calls == [((1,), {'k': 2}, True)]
    finally:
        s.cancel()


def test_signal_handler_error_raised_in_main(hub, stream):
    def handler():
        raise ValueError('x')

    s = H.signal(_signal.SIGUSR1, handler)
    try:
        os.kill(os.getpid(), _signal.SIGUSR1)
        with pytest.raises(ValueError, match='x'):
            H.sleep(0.1)
        assert 'ValueError: x' in stream.getvalue()
    finally:
        s.cancel()


def test_signal_bad_arguments(hub):
    with pytest.raises(TypeError):
        H.signal(_signal.SIGUSR1, 'notcallable')
    with pytest.raises(ValueError):
        H.signal(0, lambda: None)


def test_signal_cancel(hub):
    seen = []
    old = _signal.signal(_signal.SIGUSR1, lambda *a: seen.append('python'))
    try:
        calls = []
        s = H.signal(_signal.SIGUSR1, calls.append, 'x')
        s.cancel()
        assert s.watcher is None
        s.cancel()
        os.kill(os.getpid(), _signal.SIGUSR1)
        H.sleep(0.05)
        assert calls == []
        assert seen == ['python']
    finally:
        _signal.signal(_signal.SIGUSR1, old)


def test_signal_does_not_keep_join_waiting(hub):
    s = H.signal(_signal.SIGUSR1, lambda: None)
    try:
        assert hub.join() is True
    finally:
        s.cancel()


def test_reinit_without_hub_creates_none(check_py):
    out = check_py('import gevent_c.hub as H; print(H.reinit(), H._get_hub())')
    assert out.split() == ['None', 'None']


def test_reinit_in_forked_child(check_py):
    out = check_py('''
import os
import gevent_c.hub as H
hub = H.get_hub()
fired = []
f = hub.loop.fork()
f.start(fired.append, 'fork')
pid = os.fork()
if pid == 0:
    H.reinit()
    H.sleep(0.01)
    t = hub.loop.timer(0.01)
    hub.wait(t)
    os._exit(0 if fired == ['fork'] else 3)
_, status = os.waitpid(pid, 0)
H.sleep(0.01)
print(os.waitstatus_to_exitcode(status), fired)
''')
    assert out.strip().split('\n')[-1] == '0 []'


def test_idle_runs_after_callbacks(hub):
    log = []
    H.spawn_raw(log.append, 1)
    H.idle()
    assert log == [1]
