"""Signals under stress: dispositions given back, and a storm of signals.

The storm: signal watchers on SIGUSR1 and SIGUSR2, a child watcher (children
forked all along), Python handlers on SIGINT/SIGTERM/SIGALRM, and other
processes sending those signals as fast as they can, for a bounded time,
under ``-X faulthandler`` (whose 16 KiB alternate signal stack the handlers
nested on until it overflowed): the process must run to a normal exit.

Restoring dispositions: destroying a loop or a hub, or a thread exiting, with
an active signal (or child) watcher gives the signal its previous disposition
back, so SIGTERM with SIG_DFL before kills the process again.
"""
import signal
import subprocess
import sys
import textwrap

import pytest

import _util


def _run(code, *args, timeout=60, storm=False):
    flags = _util.storm_flags() if storm else ['-X', 'faulthandler']
    return subprocess.run(
        [sys.executable] + flags + ['-c', textwrap.dedent(code)] + list(args),
        cwd=_util.TESTS, env=_util.storm_env() if storm else _util._clean_env(),
        capture_output=True, text=True, timeout=timeout)


SENDER = r'''
import os, signal, sys, time
pid = int(sys.argv[1])
sigs = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT, signal.SIGTERM, signal.SIGALRM,
        signal.SIGCHLD]
deadline = time.monotonic() + float(sys.argv[2])
n = 0
try:
    while time.monotonic() < deadline:
        for s in sigs:
            os.kill(pid, s)
        n += len(sigs)
except ProcessLookupError:
    pass
'''

STORM = r'''
import os, signal, subprocess, sys, time
import gevent_c.hub as H

SECONDS = float(sys.argv[1])
SENDERS = int(sys.argv[2])
SENDER = sys.argv[3]
hub = H.get_hub()
loop = hub.loop
counts = {}


def py_handler(signum, frame):
    counts[signum] = counts.get(signum, 0) + 1


for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
    signal.signal(s, py_handler)


def on_signal(name):
    counts[name] = counts.get(name, 0) + 1


w1 = loop.signal(signal.SIGUSR1)
w1.start(on_signal, 'usr1')
w2 = loop.signal(signal.SIGUSR2)
w2.start(on_signal, 'usr2')
children = []


def fork_child():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    cw = loop.child(pid)
    cw.start(lambda cw: (on_signal('child'), cw.stop()), cw)
    children.append(cw)


fork_child()
senders = [subprocess.Popen([sys.executable, '-c', SENDER, str(os.getpid()), str(SECONDS)],
                            stdin=subprocess.DEVNULL)
           for _ in range(SENDERS)]
deadline = time.monotonic() + SECONDS + 0.5
while time.monotonic() < deadline:
    H.sleep(0.01)
    if len(children) < 200:
        fork_child()
for p in senders:
    p.kill()
for p in senders:
    try:
        p.wait(10)
    except ChildProcessError:
        pass
H.sleep(0.05)
for cw in children:
    cw.close()
w1.close()
w2.close()
assert counts.get('usr1', 0) + counts.get('usr2', 0) > 0, counts
assert counts.get('child', 0) > 0, counts
print(sorted((str(k), v) for k, v in counts.items()))
'''


@pytest.mark.timeout(120)
@pytest.mark.parametrize('run', range(2))
def test_item6_signal_storm(run):
    """~3 s of mixed signals from two senders, under
    ``-X faulthandler``: a normal exit, no 'Fatal Python error', no 'double
    free or corruption' (the C handler nested on faulthandler's alternate stack
    until it overflowed into the heap)."""
    p = _run(STORM, '3', '2', textwrap.dedent(SENDER), timeout=90, storm=True)
    assert 'Fatal Python error' not in p.stderr, p.stderr[-6000:]
    assert 'double free' not in p.stderr and 'corruption' not in p.stderr, p.stderr[-6000:]
    assert p.returncode == 0, 'exited %r\n--- stdout ---\n%s\n--- stderr ---\n%s' % (
        p.returncode, p.stdout[-2000:], p.stderr[-6000:])
    assert p.stderr == '', p.stderr[-6000:]


# --- restoring dispositions ---------------------------------------------------

PRELUDE = r'''
import gc, os, signal, sys, threading, time
import gevent_c.hub as H
import gevent_c.core as core


def caught(sig):
    """Is a handler installed for sig (the kernel's view: SigCgt)?"""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('SigCgt:'):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    raise AssertionError('no SigCgt')


def noop(*args):
    pass


SIG = signal.SIGTERM
before = signal.getsignal(SIG)
before_caught = caught(SIG)
'''

EPILOGUE = r'''
gc.collect()
assert signal.getsignal(SIG) == before, (signal.getsignal(SIG), before)
assert caught(SIG) == before_caught, 'the C handler is still installed'
print('restored')
sys.stdout.flush()
os.kill(os.getpid(), SIG)
time.sleep(2)
print('survived')
'''

CASES = {
    'loop_destroy': r'''
        l = core.loop(default=False)
        w = l.signal(SIG)
        w.start(noop)
        assert caught(SIG)
        l.destroy()
        del w
    ''',
    'loop_destroy_watcher_kept': r'''
        l = core.loop(default=False)
        w = l.signal(SIG)
        w.start(noop)
        l.destroy()
        del l
    ''',
    'hub_destroy': r'''
        h = H.Hub(loop=core.loop(default=False))
        w = h.loop.signal(SIG)
        w.start(noop)
        h.destroy(destroy_loop=True)
        del w, h
    ''',
    'main_hub_destroy': r'''
        h = H.get_hub()
        w = h.loop.signal(SIG)
        w.start(noop)
        H.sleep(0.001)
        h.destroy(destroy_loop=True)
        del w, h
    ''',
    'thread_exit': r'''
        def run():
            w = H.get_hub().loop.signal(SIG)
            w.start(noop)
            H.sleep(0.01)
        t = threading.Thread(target=run)
        t.start()
        t.join()
        del t
    ''',
    'thread_exit_hub_unreferenced_watcher': r'''
        keep = []
        def run():
            w = H.get_hub().loop.signal(SIG, ref=False)
            w.start(noop)
            keep.append(w)          # the watcher outlives the thread
            H.sleep(0.01)
        t = threading.Thread(target=run)
        t.start()
        t.join()
        del t
        keep.clear()
    ''',
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_item2_disposition_restored(case):
    """After the loop, the hub or the thread that installed
    the C handler for SIGTERM goes away, ``signal.getsignal`` and the kernel's
    disposition are what they were (SIG_DFL), and SIGTERM kills the process
    (returncode -15)."""
    code = PRELUDE + textwrap.dedent(CASES[case]) + EPILOGUE
    p = _run(code)
    assert 'restored' in p.stdout, 'exited %r\n--- stdout ---\n%s\n--- stderr ---\n%s' % (
        p.returncode, p.stdout, p.stderr[-6000:])
    assert p.returncode == -signal.SIGTERM, 'exited %r (the process survived SIGTERM)\n%s\n%s' % (
        p.returncode, p.stdout, p.stderr[-6000:])
    assert 'survived' not in p.stdout
    assert p.stderr == '', p.stderr[-6000:]


PY_HANDLER = r'''
import gc, os, signal, sys, time
import gevent_c.core as core
got = []
signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
before = signal.getsignal(signal.SIGTERM)
l = core.loop(default=False)
w = l.signal(signal.SIGTERM)
w.start(lambda: None)
l.destroy()
del w, l
gc.collect()
assert signal.getsignal(signal.SIGTERM) is before
os.kill(os.getpid(), signal.SIGTERM)
for _ in range(100):
    if got:
        break
    time.sleep(0.01)
print(got == [signal.SIGTERM])
'''


def test_item2_python_handler_restored():
    """A Python handler installed before the watcher is the one that runs
    after the loop is destroyed."""
    p = _run(PY_HANDLER)
    assert p.returncode == 0, 'exited %r\n%s' % (p.returncode, p.stderr[-6000:])
    assert p.stdout.strip() == 'True', p.stdout
    assert p.stderr == '', p.stderr


CHILD_RESTORE = r'''
import gc, os, signal, sys
import gevent_c.hub as H


def caught(sig):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('SigCgt:'):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)


before = signal.getsignal(signal.SIGCHLD)
before_caught = caught(signal.SIGCHLD)
hub = H.get_hub()
pid = os.fork()
if pid == 0:
    os._exit(3)
cw = hub.loop.child(pid)
cw.start(lambda: None)
H.sleep(0.05)
hub.destroy(destroy_loop=True)
del cw, hub
gc.collect()
print(signal.getsignal(signal.SIGCHLD) == before, caught(signal.SIGCHLD) == before_caught)
'''


def test_item2_sigchld_restored_after_hub_destroy():
    """The same for a child watcher's SIGCHLD handler: destroying the hub
    and its (default) loop gives SIGCHLD back its previous disposition."""
    p = _run(CHILD_RESTORE)
    assert p.returncode == 0, 'exited %r\n%s' % (p.returncode, p.stderr[-6000:])
    assert p.stdout.strip() == 'True True', p.stdout
    assert p.stderr == '', p.stderr
