"""loop(flags, default), the loop properties not covered by test_loop.py, and
the loop cases where gevent crashes or hangs that are not tied to one watcher
type (docs/semantics.md, 'The loop and callbacks')."""
import os
import re
import time

import pytest

import gevent_c.core as core
import gevent_c.hub as H
from _util import noop as _noop

# ---------------------------------------------------------------- constructor


def test_check_ctor():
    # check: default False/True, 'epoll' backend, select/nonsense ValueError, object() TypeError
    lp = core.loop(default=False)
    try:
        assert lp.default is False
    finally:
        lp.destroy()
    assert core.loop().default is True
    lp = core.loop('epoll', False)
    try:
        assert lp.backend == 'epoll'
    finally:
        lp.destroy()
    with pytest.raises(ValueError):
        core.loop('select', False)
    with pytest.raises(ValueError):
        core.loop('nonsense', False)
    with pytest.raises(TypeError):
        core.loop(object(), False)


def test_default_none_and_true_wrap_default(hub):
    for d in (None, True):
        lp = core.loop(default=d)
        assert lp.default is True
        # the hub's default loop is unaffected by another wrapper
        assert hub.loop.default is True


def test_default_loop_wrappers_share_native_loop(hub):
    # the docstring says there is one Python object per native loop; either way,
    # both wrappers must identify the same native loop.
    lp = core.loop()
    assert lp.ptr == hub.loop.ptr
    assert lp.fileno() == hub.loop.fileno()


def test_private_loops_are_distinct():
    a = core.loop(default=False)
    b = core.loop(default=False)
    try:
        assert a is not b
        assert a.ptr != b.ptr
    finally:
        a.destroy()
        b.destroy()


@pytest.mark.parametrize('flags', [None, 0, '', []])
def test_flags_platform_default(flags):
    lp = core.loop(flags, False)
    try:
        assert lp.backend == 'epoll'
    finally:
        lp.destroy()


@pytest.mark.parametrize('flags', ['epoll', 'default', ' EPOLL ', 'Default', ['epoll'],
                                   ['  epoll', 'noenv'], 'epoll,noenv', 'epoll , forkcheck'])
def test_flags_accepted(flags):
    lp = core.loop(flags, False)
    try:
        assert lp.backend == 'epoll'
    finally:
        lp.destroy()


@pytest.mark.parametrize('flag', ['noenv', 'forkcheck', 'noinotify', 'signalfd', 'nosigmask'])
def test_libev_tuning_flags_accepted_and_documented(flag):
    lp = core.loop(flag, False)
    try:
        assert lp.backend == 'epoll'
    finally:
        lp.destroy()
    # "documented in the docstring, not silent"
    assert flag in (core.loop.__doc__ or '')


@pytest.mark.parametrize('name', ['select', 'poll', 'kqueue', 'port', 'linux_aio',
                                  'linux_iouring', 'devpoll'])
def test_unsupported_backend(name):
    with pytest.raises(ValueError) as ei:
        core.loop(name, False)
    assert str(ei.value) == 'Unsupported backend: %s' % name


def test_unsupported_backend_in_list():
    with pytest.raises(ValueError) as ei:
        core.loop(['epoll', 'SELECT'], False)
    assert 'Unsupported backend' in str(ei.value)


def test_unknown_word_message():
    with pytest.raises(ValueError) as ei:
        core.loop('nonsense', False)
    msg = str(ei.value)
    assert msg.startswith("Invalid backend or flag: 'nonsense'\nPossible values: "), msg
    assert 'epoll' in msg.split('\n', 1)[1]


def test_unknown_word_in_comma_list():
    with pytest.raises(ValueError) as ei:
        core.loop('epoll,bogus', False)
    assert "'bogus'" in str(ei.value)


@pytest.mark.parametrize('flags', [1, 2, -1, 0x10])
def test_nonzero_int_flags(flags):
    # gevent (libev) accepts integer backend bits; gevent_c: ValueError
    with pytest.raises(ValueError):
        core.loop(flags, False)


@pytest.mark.parametrize('flags', [object(), 1.5, b'epoll', [1]])
def test_other_flag_types(flags):
    with pytest.raises(TypeError):
        core.loop(flags, False)


def test_destroy_default_wrapper_affects_all_and_fresh_default(check_py):
    check_py('''
        import gevent_c.core as core
        a = core.loop()
        b = core.loop()
        assert a.default is True and b.default is True
        a.destroy()
        for lp in (a, b):
            assert lp.default is False, lp
            try:
                lp.run()
            except ValueError as e:
                assert str(e) == 'operation on destroyed loop'
            else:
                raise AssertionError('run() on destroyed default loop')
        c = core.loop()
        assert c.default is True
        log = []
        c.run_callback(log.append, 1)
        c.run()
        assert log == [1]
        print('ok')
    ''', timeout=15)


# ---------------------------------------------------------------- properties


def test_fileno(L, loop):
    fd = L.fileno()
    assert isinstance(fd, int) and fd >= 0
    os.fstat(fd)  # a real open fd
    assert isinstance(loop.fileno(), int)


def test_fileno_none_after_destroy():
    lp = core.loop(default=False)
    lp.destroy()
    assert lp.fileno() is None


def test_ptr(L):
    assert isinstance(L.ptr, int)
    assert L.ptr


def test_ptr_falsy_after_destroy():
    lp = core.loop(default=False)
    lp.destroy()
    assert not lp.ptr


def test_format(L, loop):
    assert re.match(r'^epoll pending=0 ref=\d+ fileno=\d+$', L._format()), L._format()
    assert re.match(r'^epoll default pending=\d+ ref=\d+ fileno=\d+$', loop._format()), loop._format()
    assert str(L.fileno()) in L._format()


def test_format_destroyed():
    lp = core.loop(default=False)
    lp.destroy()
    assert lp._format() == 'destroyed'
    assert re.match(r'^<loop at 0x[0-9a-f]+ destroyed>$', repr(lp)), repr(lp)


def test_repr_shows_format(L):
    assert repr(L) == '<loop at 0x%x %s>' % (id(L), L._format()), repr(L)


def test_format_ref_counts_active_watchers(L):
    t = L.timer(5)
    t.start(_noop)
    try:
        assert 'ref=1' in L._format(), L._format()
    finally:
        t.stop()
    assert 'ref=0' in L._format(), L._format()


def test_backend(L):
    assert L.backend == 'epoll'


def test_approx_timer_resolution(L):
    assert L.approx_timer_resolution == 0.001


def test_loop_maxpri_minpri(L):
    assert L.MAXPRI == 2
    assert L.MINPRI == -2


def test_watcher_type(L):
    assert isinstance(L.WatcherType, type)
    t = L.timer(1)
    try:
        assert isinstance(t, L.WatcherType)
    finally:
        t.close()


def test_verify_is_noop(L):
    # MAY: absent (AttributeError) or a no-op returning None
    verify = getattr(L, 'verify', None)
    if verify is not None:
        assert verify() is None


def test_pendingcnt_zero_outside(L, loop):
    assert L.pendingcnt == 0
    H.sleep(0)
    assert loop.pendingcnt == 0


def test_pendingcnt_inside_callbacks(loop):
    # Two io watchers ready in the same iteration. gevent 26.9.0 (libev cext):
    # the first callback sees pendingcnt == 1 (the other one), the second sees 0.
    r, w = os.pipe()
    a = loop.io(r, core.READ)
    b = loop.io(r, core.READ)
    seen = []
    try:
        def cb(watcher):
            seen.append(loop.pendingcnt)
            watcher.stop()
        a.start(cb, a)
        b.start(cb, b)
        os.write(w, b'x')
        H.sleep(0.02)
        assert sorted(seen) == [0, 1], seen
    finally:
        a.close()
        b.close()
        os.close(r)
        os.close(w)


def test_pendingcnt_type_and_iteration_on_destroyed():
    lp = core.loop(default=False)
    assert isinstance(lp.pendingcnt, int)
    lp.destroy()
    with pytest.raises(ValueError):
        lp.iteration


def test_reinit_keeps_loop_usable(check_py):
    check_py('''
        import gevent_c.core as core
        L = core.loop(default=False)
        log = []
        t = L.timer(0.01)
        t.start(log.append, 't')
        assert L.reinit() is None
        L.run()
        assert log == ['t'], log
        L.destroy()
    ''', timeout=10)


def test_break_with_how_argument(L):
    count = []
    t = L.timer(0.005, 0.005)

    def tick():
        count.append(1)
        if len(count) == 2:
            L.break_(1)

    t.start(tick)
    try:
        L.run()
        assert len(count) == 2
        assert t.active
    finally:
        t.stop()


def test_ref_unref_balance_keeps_run_going(L):
    # loop-level ref() adds to activecnt: run() keeps iterating until unref()
    L.ref()
    ticks = []
    t = L.timer(0.005, 0.005)

    def tick():
        ticks.append(1)
        if len(ticks) == 2:
            t.stop()
            L.run_callback(L.unref)

    t.start(tick)
    t0 = time.monotonic()
    L.run()
    assert len(ticks) == 2
    assert L.activecnt == 0
    assert time.monotonic() - t0 < 5


# ---------------------------------------------------------------- where gevent crashes


def test_default_error_handler_prints_real_traceback(run_py):
    # gevent 22.10.2's default handler raises AttributeError (__suppress_context__)
    # on 3.11; gevent_c prints the real traceback and breaks run().
    p = run_py('''
        import gevent_c.core as core
        L = core.loop(default=False)
        def inner():
            raise KeyError('boom')
        def bad():
            try:
                inner()
            except KeyError as e:
                raise ValueError('chained') from e
        t = L.timer(5)
        t.start(lambda: None)
        L.run_callback(bad)
        L.run()
        t.stop()
        print('returned')
    ''', timeout=10)
    assert p.returncode == 0, p.stderr
    assert 'returned' in p.stdout
    assert 'Traceback (most recent call last)' in p.stderr, p.stderr
    assert 'in inner' in p.stderr and 'in bad' in p.stderr, p.stderr
    assert 'ValueError: chained' in p.stderr, p.stderr
    assert '__suppress_context__' not in p.stderr, p.stderr


def test_kill_hub_keyboardinterrupt_then_destroy_returns(run_py):
    # gevent 22.10.2 hangs forever here; gevent_c's destroy returns.
    p = run_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        t = hub.loop.timer(5)
        t.start(lambda: None)
        H.sleep(0)
        try:
            H.kill(hub, KeyboardInterrupt)
            H.sleep(0.01)
        except KeyboardInterrupt:
            pass
        hub.destroy()
        print('destroyed')
    ''', timeout=10)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert 'destroyed' in p.stdout
