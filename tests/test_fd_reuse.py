"""An fd closed and its number reused by a new file of the same kind: the new
file's events arrive (tests/fd_reuse_matrix.py runs the cases).

(st_dev, st_ino) cannot tell an old eventfd, signalfd, timerfd, epoll fd or
pty master from a new one (they share one inode), but epoll registers the
open file: the loop must register the fd again after its last watcher
stopped, and take the old file out of epoll then (a dup may keep the old
file open and ready: mode dup_kept), and when a watcher just given the fd
starts while another one, left active after its file was closed, keeps
the poll armed (mode stale_watcher).  Each API's matrix runs once, in a subprocess (a lost event would
otherwise cascade into the next cases)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import _util
from fd_reuse_matrix import KINDS, MODES

MATRIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fd_reuse_matrix.py')
_results = {}

# the child's start for the eventfd scenarios: first_event(w, fd) starts w
# (a read watcher of the eventfd fd), writes to fd and returns what came
# first, 'event' or a 2 s 'timeout'
EVENTFD_PRELUDE = textwrap.dedent('''
    import os
    import gevent_c.hub as H
    loop = H.get_hub().loop

    def first_event(w, fd):
        got = []
        w.start(got.append, 'event')
        os.eventfd_write(fd, 1)
        t = loop.timer(2.0)
        t.start(got.append, 'timeout')
        while not got:
            H.sleep(0.001)
        return got[0]
''')


def matrix(api):
    if api not in _results:
        if api == 'gevent':
            if _util.compat_python() is None:
                pytest.skip('compat venv absent (make compat-venv)')
            p = _util.run_gevent([MATRIX, 'gevent'], timeout=120)
        else:
            p = subprocess.run([sys.executable, MATRIX, 'hub'], cwd=_util.TESTS,
                               env=_util._clean_env(), capture_output=True,
                               text=True, timeout=120)
        assert p.returncode == 0, (p.stdout, p.stderr)
        _results[api] = json.loads(p.stdout.strip().splitlines()[-1])
    return _results[api]


@pytest.mark.timeout(150)
@pytest.mark.parametrize('api', ['hub', 'gevent'])
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('kind', list(KINDS))
def test_event_after_fd_reuse(api, kind, mode):
    res = matrix(api)['%s/%s' % (kind, mode)]
    if res.startswith('skip'):
        pytest.skip(res)
    assert res == 'ok'


def test_issue_repro_eventfd(check_py):
    # stop and close an eventfd watcher, open a new eventfd (same number),
    # watch it, write to it: the event arrives
    if not hasattr(os, 'eventfd'):
        pytest.skip('os.eventfd')
    out = check_py(EVENTFD_PRELUDE + textwrap.dedent('''
        fd = os.eventfd(0, os.EFD_NONBLOCK)
        w = loop.io(fd, 1)
        w.start(os.eventfd_read, fd)
        os.eventfd_write(fd, 1)
        H.sleep(0.01)
        w.stop()
        os.close(fd)
        fd2 = os.eventfd(0, os.EFD_NONBLOCK)
        assert fd2 == fd, (fd, fd2)
        w2 = loop.io(fd2, 1)
        print(first_event(w2, fd2))
    '''))
    assert out.split() == ['event']



@pytest.mark.parametrize('how', ['new', 'fd_setter'])
def test_stale_watcher_eventfd(check_py, how):
    # a watcher left started while its eventfd is closed keeps the fd's poll
    # armed; a new eventfd at the same number, watched by a watcher just
    # given that fd (a new one, or an old one whose fd is set), still gets
    # its events (zmq.green's sockets: ZMQ_FD is an eventfd readable only on
    # a state change, so a missed registration is a wait that never ends)
    if not hasattr(os, 'eventfd'):
        pytest.skip('os.eventfd')
    out = check_py(EVENTFD_PRELUDE + textwrap.dedent('''
        fd = os.eventfd(0, os.EFD_NONBLOCK)
        stale = loop.io(fd, 1)
        stale.start(lambda: None)
        H.sleep(0.01)                  # armed, and registered by libuv
        os.close(fd)                   # the registration goes with the file
        fd2 = os.eventfd(0, os.EFD_NONBLOCK)
        assert fd2 == fd, (fd, fd2)
        if HOW == 'new':
            w = loop.io(fd2, 1)
        else:
            other = os.eventfd(0)
            w = loop.io(other, 1)
            w.fd = fd2
        print(first_event(w, fd2))
    ''').replace('HOW', repr(how)))
    assert out.split() == ['event']
