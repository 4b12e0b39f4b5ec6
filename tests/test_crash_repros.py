"""Minimal repros, in the form they were reported, of three crashes
(docs/reliability.md): a destroyed loop keeping SIGTERM, a hub destroyed from
a thread that does not own it, and a Waiter given something that is not a hub.

The other repros of that review sit next to the sweep that guards their class:
test_gc_torture.py, test_sweep_uninit.py, test_fork_matrix.py,
test_sweep_foreign_thread.py, test_signal_storm.py.
"""
import signal
import subprocess
import sys
import textwrap

import pytest

import _util


def _run(code, timeout=60):
    return subprocess.run(
        [sys.executable, '-X', 'faulthandler', '-c', textwrap.dedent(code)],
        cwd=_util.TESTS, env=_util._clean_env(), capture_output=True, text=True,
        timeout=timeout)


ITEM2 = r'''
import gc, os, signal, time
from gevent_c.core import loop

l = loop(default=False)
w = l.signal(signal.SIGTERM)
w.start(lambda: None)
l.destroy()
del w
gc.collect()
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(2)
print('survived SIGTERM')
'''


def test_loop_destroy_gives_sigterm_back():
    """Item 2, verbatim: a private loop's SIGTERM watcher, ``loop.destroy()``,
    the watcher dropped, then SIGTERM: the process dies of it (the C handler
    used to stay installed)."""
    p = _run(ITEM2)
    assert p.returncode == -signal.SIGTERM, 'exited %r\n%s\n%s' % (
        p.returncode, p.stdout, p.stderr[-6000:])
    assert p.stdout == '' and p.stderr == '', (p.stdout, p.stderr)


ITEM8 = r'''
import threading
import gevent_c.hub as H

hub = H.get_hub()
main_loop = hub.loop
out = {}


def foreign():
    try:
        hub.destroy()
        out['destroy'] = 'returned'
    except Exception as ex:
        out['destroy'] = type(ex).__name__
    mine = H.get_hub()
    out['own_hub_is_main'] = mine is hub
    out['own_loop_is_main'] = mine.loop is main_loop
    out['own_loop_default'] = mine.loop.default


t = threading.Thread(target=foreign)
t.start()
while t.is_alive():
    H.sleep(0.001)
t.join()
# the owner's hub keeps working
H.sleep(0.01)
w = H.Waiter(hub)
hub.loop.run_callback(w.switch, 'ok')
assert w.get() == 'ok'
assert H.get_hub() is hub and hub.loop is main_loop
print(sorted(out.items()))
'''


def test_foreign_hub_destroy_raises():
    """Item 8: ``Hub.destroy()`` from a thread that does not own the hub
    raises (as the pool does), the owner's hub keeps working, and the calling
    thread's next ``get_hub()`` gets a hub of its own on a new, non-default
    loop (it used to adopt the main thread's default loop)."""
    p = _run(ITEM8)
    assert p.returncode == 0, 'exited %r\n%s\n%s' % (p.returncode, p.stdout, p.stderr[-6000:])
    assert p.stderr == '', p.stderr
    out = dict(eval(p.stdout))
    assert out['destroy'] != 'returned', out
    assert out['destroy'] in ('RuntimeError', 'InvalidThreadUseError'), out
    assert out['own_hub_is_main'] is False, out
    assert out['own_loop_is_main'] is False, out
    assert out['own_loop_default'] is False, out


# Item 9.  gevent's compiled Waiter declares ``cdef readonly
# SwitchOutGreenletWithLoop hub`` (src/gevent/_gevent_c_waiter.pxd), so
# ``Waiter(x)`` raises TypeError for anything that is not a hub (None means
# get_hub()).
ITEM9 = r'''
import greenlet
from greenlet import getcurrent
import gevent_c.hub as H

hub = H.get_hub()
ran = []


def f():
    ran.append(1)
    return 'f ran'


def attempt(make, use):
    try:
        w = make()
    except TypeError:
        return 'TypeError'
    try:
        return 'accepted: %r' % (use(w),)
    except BaseException as ex:
        return 'accepted, then %s' % type(ex).__name__


res = {}
res['greenlet'] = attempt(lambda: H.Waiter(greenlet.greenlet(f)), lambda w: w.get())
res['main greenlet'] = attempt(lambda: H.Waiter(getcurrent()), lambda w: w.get())
res['int'] = attempt(lambda: H.Waiter(42), lambda w: w.switch(1))


def in_greenlet():
    res['non-hub current'] = attempt(lambda: H.Waiter(getcurrent()), lambda w: w.switch(1))


greenlet.greenlet(in_greenlet).switch()
res['ran'] = bool(ran)
# a hub, a Hub subclass's instance and None are accepted
assert H.Waiter(hub).hub is hub
assert H.Waiter(None).hub is hub
assert H.Waiter().hub is hub
print(sorted(res.items()))
'''


def test_waiter_rejects_non_hub():
    """Item 9: ``Waiter(greenlet.greenlet(f))``, ``Waiter(getcurrent())`` (in
    the main greenlet and in another non-hub greenlet) and ``Waiter(42)`` each
    raise TypeError, as gevent's do; ``f`` never runs."""
    p = _run(ITEM9)
    assert p.returncode == 0, 'exited %r\n%s\n%s' % (p.returncode, p.stdout, p.stderr[-6000:])
    assert p.stderr == '', p.stderr
    res = dict(eval(p.stdout))
    assert res == {'greenlet': 'TypeError', 'main greenlet': 'TypeError', 'int': 'TypeError',
                   'non-hub current': 'TypeError', 'ran': False}, res


@pytest.mark.parametrize('arg', ['greenlet.greenlet(lambda: None)', 'getcurrent()', '42',
                                 "'hub'", 'object()'])
def test_waiter_rejects_non_hub_in_process(arg):
    """The same check in this process, one argument at a time."""
    import greenlet  # noqa: F401
    from greenlet import getcurrent  # noqa: F401
    import gevent_c.hub as H
    value = eval(arg)
    with pytest.raises(TypeError):
        H.Waiter(value)
