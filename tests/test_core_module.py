"""Module-level names of gevent_c.core, and the common watcher contract
(docs/semantics.md, 'Watchers') applied to every watcher type (timer has its own, deeper
tests in test_timer.py; child runs in a subprocess, see test_child.py)."""
import gc
import os
import re
import signal
import time
import weakref

import pytest
from _util import noop as _noop

import gevent_c.core as core


# ---------------------------------------------------------------- module names


def test_check_events_str_version():
    # check: _events_to_str(READ|WRITE) == 'READ|WRITE'; str(EVENTS); versions
    assert core._events_to_str(core.READ | core.WRITE) == 'READ|WRITE'
    assert str(core.EVENTS) == 'gevent_c.core.EVENTS'
    assert core.get_version() == core.get_header_version()
    assert core.get_version().startswith('libuv-')
    assert core.get_header_version().startswith('libuv-')


def test_read_write_values():
    assert (core.READ, core.WRITE, core.READWRITE) == (1, 2, 3)


def test_events_repr():
    assert repr(core.EVENTS) == 'gevent_c.core.EVENTS'


def test_maxpri_minpri():
    assert (core.MAXPRI, core.MINPRI) == (2, -2)


def test_version_format():
    assert re.match(r'^libuv-\d+\.\d+\.\d+', core.get_version()), core.get_version()


@pytest.mark.skipif(not os.uname().sysname == 'Linux', reason='Linux poller name')
def test_backends_epoll():
    assert core.supported_backends() == ['epoll']
    assert core.recommended_backends() == ['epoll']


def test_time_is_wall_clock():
    t = core.time()
    assert isinstance(t, float)
    assert abs(t - time.time()) < 1.0


@pytest.mark.parametrize('mask, text', [
    (core.READ, 'READ'),
    (core.WRITE, 'WRITE'),
    (core.READWRITE, 'READ|WRITE'),
])
def test_events_to_str_known(mask, text):
    assert core._events_to_str(mask) == text


def test_events_to_str_unknown_bits_hex():
    # gevent (libev cext, 26.9.0): _events_to_str(4) == '0x4',
    # _events_to_str(0x101) == 'READ|0x100'.
    assert core._events_to_str(4) == '0x4'
    assert core._events_to_str(0x100 | core.READ) == 'READ|0x100'


WATCHER_NAMES = ['timer', 'io', 'signal', 'idle', 'prepare', 'check', 'fork',
                 'async_', 'child', 'stat', 'callback']


@pytest.mark.parametrize('name', WATCHER_NAMES)
def test_watcher_class_exported(name):
    cls = getattr(core, name)
    assert isinstance(cls, type)


def test_loop_exported(hub):
    assert core.loop is type(hub.loop)


# ---------------------------------------------------------------- the contract on every type


# (the `pipe` fixture is in conftest.py)

@pytest.fixture
def keep_sigusr2():
    old = signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGUSR2, old)


def _make(kind, lp, pipe, **kw):
    r, w = pipe
    if kind == 'io':
        return lp.io(r, core.READ, **kw)
    if kind == 'timer':
        return lp.timer(5, **kw)
    if kind == 'signal':
        return lp.signal(signal.SIGUSR2, **kw)
    if kind == 'stat':
        return lp.stat('/tmp', 5.0, **kw)
    return getattr(lp, kind)(**kw)


TYPES = ['io', 'timer', 'signal', 'idle', 'prepare', 'check', 'fork', 'async_', 'stat']


@pytest.fixture(params=TYPES)
def kind(request, keep_sigusr2):
    return request.param


def test_factory_returns_class_instance(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    try:
        assert type(w).__name__ == kind
        # the exported class (checked in test_watcher_class_exported) is this type
        assert type(w) is getattr(core, kind, type(w))
    finally:
        w.close()


def test_async_alias_by_getattr(loop):
    a = getattr(loop, 'async')()
    try:
        assert type(a) is type(loop.async_())
    finally:
        a.close()


def test_fresh_attributes(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    try:
        assert w.active is False
        assert w.pending is False
        assert w.callback is None
        assert w.args is None
        assert w.ref is True
        assert w.priority == 0
        assert w.loop is loop
    finally:
        w.close()


def test_start_sets_state_and_priority_read_only(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    try:
        assert w.start(_noop, 1, 2) is None
        assert w.active is True
        assert w.args == (1, 2)
        assert w.callback is _noop
        with pytest.raises(AttributeError) as ei:
            w.priority = 1
        assert 'Cannot set priority of an active watcher' in str(ei.value)
        assert w.priority == 0
    finally:
        w.close()


def test_args_and_callback_setters(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    try:
        w.start(_noop)
        w.args = (3,)
        assert w.args == (3,)
        with pytest.raises(TypeError):
            w.args = 5
        with pytest.raises(TypeError) as ei:
            w.callback = 5
        assert str(ei.value) == 'Expected callable, not 5'
        assert w.callback is _noop
    finally:
        w.close()


def test_stop_twice_clears(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    try:
        w.start(_noop, 1)
        w.stop()
        w.stop()
        assert w.active is False
        assert w.callback is None
        assert w.args is None
    finally:
        w.close()


def test_close_twice_then_start_raises(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    w.start(_noop)
    w.close()
    w.close()
    assert w.active is False
    assert w.callback is None
    assert w.loop is None
    with pytest.raises(ValueError) as ei:
        w.start(_noop)
    assert str(ei.value) == 'operation on closed watcher'
    w.stop()


@pytest.mark.parametrize('bad', [None, 5])
def test_start_non_callable(kind, loop, pipe, bad):
    w = _make(kind, loop, pipe)
    try:
        with pytest.raises(TypeError) as ei:
            w.start(bad)
        assert str(ei.value) == 'Expected callable, not %r' % (bad,)
        assert w.active is False
    finally:
        w.close()


def test_context_manager(kind, loop, pipe):
    with _make(kind, loop, pipe) as w:
        assert type(w).__name__ == kind
        w.start(_noop)
        assert w.active
    assert w.active is False
    with pytest.raises(ValueError):
        w.start(_noop)


def test_context_manager_does_not_suppress(kind, loop, pipe):
    with pytest.raises(KeyError):
        with _make(kind, loop, pipe) as w:
            raise KeyError('x')
    with pytest.raises(ValueError):
        w.start(_noop)


def test_active_watcher_keeps_itself_alive(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    w.start(_noop)
    ref = weakref.ref(w)
    del w
    gc.collect()
    w = ref()
    assert w is not None, 'active watcher was collected'
    assert w.active
    w.stop()
    del w
    gc.collect()
    assert ref() is None, 'stopped watcher not collectable'


def test_callback_released_after_stop(kind, loop, pipe):
    class CB:
        def __call__(self, *a):
            pass

    cb = CB()
    cref = weakref.ref(cb)
    w = _make(kind, loop, pipe)
    w.start(cb)
    del cb
    w.stop()
    del w
    gc.collect()
    assert cref() is None


def test_ref_affects_activecnt(kind, L, pipe):
    w = _make(kind, L, pipe)
    try:
        base = L.activecnt
        w.start(_noop)
        assert L.activecnt == base + 1
        w.ref = False
        assert w.ref is False
        assert L.activecnt == base
        w.ref = True
        assert L.activecnt == base + 1
        w.stop()
        assert L.activecnt == base
    finally:
        w.close()


def test_ref_false_constructor(kind, L, pipe):
    w = _make(kind, L, pipe, ref=False)
    try:
        assert w.ref is False
        w.start(_noop)
        assert L.activecnt == 0
        t0 = time.monotonic()
        L.run()  # nothing referenced: returns at once
        assert time.monotonic() - t0 < 1.0
    finally:
        w.close()


@pytest.mark.parametrize('value, clamped', [(100, 2), (-100, -2)])
def test_priority_clamped(kind, loop, pipe, value, clamped):
    # values are clamped to [MINPRI, MAXPRI] (never a crash)
    w = _make(kind, loop, pipe)
    try:
        w.priority = 1
        assert w.priority == 1
        w.priority = value
        assert w.priority == clamped
    finally:
        w.close()


def test_priority_constructor(kind, loop, pipe):
    w = _make(kind, loop, pipe, priority=-1)
    try:
        assert w.priority == -1
    finally:
        w.close()


def test_repr(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    try:
        r = repr(w)
        assert re.match(r'^<%s at 0x[0-9a-f]+' % kind, r), r
        assert r.endswith('>'), r
        assert not re.search(r'\bactive\b', r), r
        w.start(_noop, 'A')
        r = repr(w)
        assert re.search(r'\bactive\b', r), r
        assert 'callback=' in r, r
        assert "args=('A',)" in r, r
    finally:
        w.close()


def test_destroyed_loop_makes_watcher_inert(kind, pipe):
    lp = core.loop(default=False)
    w = _make(kind, lp, pipe)
    lp.destroy()
    with pytest.raises(ValueError):
        w.start(_noop)
    w.stop()
    w.close()
    w.close()


def test_destroyed_loop_with_active_watcher(kind, pipe):
    lp = core.loop(default=False)
    w = _make(kind, lp, pipe)
    w.start(_noop)
    lp.destroy()
    assert w.active is False
    with pytest.raises(ValueError):
        w.start(_noop)
    w.stop()
    w.close()


@pytest.mark.parametrize('factory', ['io', 'timer', 'signal', 'idle', 'prepare',
                                     'check', 'fork', 'async_', 'stat'])
def test_factories_on_destroyed_loop_raise(factory):
    lp = core.loop(default=False)
    lp.destroy()
    args = {'io': (0, 1), 'timer': (1,), 'signal': (signal.SIGUSR2,),
            'stat': ('/tmp',)}.get(factory, ())
    with pytest.raises(ValueError) as ei:
        getattr(lp, factory)(*args)
    assert str(ei.value) == 'operation on destroyed loop'


def test_watcher_base_class(kind, loop, pipe):
    w = _make(kind, loop, pipe)
    try:
        assert isinstance(w, core.watcher)
    finally:
        w.close()
