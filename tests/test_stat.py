"""stat watchers (docs/semantics.md, 'stat'): create/modify/delete, attr/prev,
path types (bytes accepted, unlike gevent), interval, and
destroy(destroy_loop=True) with active stat watchers (gevent crashes). libuv polls at least every ~0.107 s, so waits are up to 1 s."""
import os
import pathlib
import time

import pytest

import gevent_c.hub as H
from _util import noop as _noop

def _wait_for(pred, timeout=1.0):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        H.sleep(0.02)
    return pred()


def test_check_create_and_path(loop, tmp_path):
    # check: stat(str(d/'f'), 0.01) started; create the file -> hits[0] == (True, False);
    # st.path == str(d/'f'); loop.stat(b'/tmp').path == b'/tmp'
    d = tmp_path
    hits = []
    st = loop.stat(str(d / 'f'), 0.01)
    try:
        st.start(lambda: hits.append((st.attr is not None, st.prev is not None)))
        H.sleep(0.05)
        (d / 'f').write_bytes(b'x')
        _wait_for(lambda: hits)
        assert hits and hits[0] == (True, False), hits
        assert st.path == str(d / 'f')
    finally:
        st.close()
    b = loop.stat(b'/tmp')
    try:
        assert b.path == b'/tmp'
    finally:
        b.close()


def test_create_modify_delete(loop, tmp_path):
    f = tmp_path / 'f'
    seen = []
    st = loop.stat(str(f), 0.01)

    def cb():
        seen.append((st.attr, st.prev))

    try:
        st.start(cb)
        H.sleep(0.05)
        f.write_bytes(b'a')
        assert _wait_for(lambda: len(seen) >= 1), 'no event for create'
        attr, prev = seen[-1]
        assert attr is not None and prev is None
        assert attr.st_size == 1

        f.write_bytes(b'abcdef')
        assert _wait_for(lambda: len(seen) >= 2), 'no event for modify'
        attr, prev = seen[-1]
        assert attr is not None and prev is not None
        assert (prev.st_size, attr.st_size) == (1, 6)

        f.unlink()
        assert _wait_for(lambda: len(seen) >= 3), 'no event for delete'
        attr, prev = seen[-1]
        assert attr is None
        assert prev is not None and prev.st_size == 6
    finally:
        st.close()


def test_attr_is_current_stat_after_start(loop, tmp_path):
    # "attr is the current stat result": for an existing path it is set once
    # started, without any change. gevent 26.9.0 (libev): attr set right after
    # start(), size 3 after H.sleep(0.2); prev None.
    f = tmp_path / 'f'
    f.write_bytes(b'abc')
    st = loop.stat(str(f), 0.01)
    try:
        assert st.attr is None  # not started: gevent also reports None
        st.start(_noop)
        assert _wait_for(lambda: st.attr is not None, 0.5)
        assert st.attr.st_size == 3
        assert st.prev is None
    finally:
        st.close()


def test_attr_none_for_missing_path(loop, tmp_path):
    st = loop.stat(str(tmp_path / 'missing'), 0.01)
    try:
        st.start(_noop)
        H.sleep(0.2)
        assert st.attr is None
        assert st.prev is None
    finally:
        st.close()


def test_no_change_no_callback(loop, tmp_path):
    f = tmp_path / 'f'
    f.write_bytes(b'abc')
    hits = []
    st = loop.stat(str(f), 0.01)
    try:
        st.start(hits.append, 1)
        H.sleep(0.3)
        assert hits == []
    finally:
        st.close()


def test_bytes_path_fires(loop, tmp_path):
    # gevent 22.10.2 rejects bytes
    f = tmp_path / 'f'
    hits = []
    st = loop.stat(os.fsencode(str(f)), 0.01)
    try:
        assert st.path == os.fsencode(str(f))
        st.start(hits.append, 1)
        H.sleep(0.05)
        f.write_bytes(b'x')
        assert _wait_for(lambda: hits)
    finally:
        st.close()


def test_pathlike_path(loop, tmp_path):
    f = tmp_path / 'f'
    hits = []
    st = loop.stat(f, 0.01)
    try:
        assert st.path == f  # returns what was given
        assert isinstance(st.path, pathlib.PurePath)
        st.start(hits.append, 1)
        H.sleep(0.05)
        f.write_bytes(b'x')
        assert _wait_for(lambda: hits)
    finally:
        st.close()


@pytest.mark.parametrize('bad', [5, None, 1.5])
def test_bad_path_type(loop, bad):
    with pytest.raises(TypeError):
        loop.stat(bad)


@pytest.mark.parametrize('interval', [0.01, 0.2, 2.5])
def test_interval_returns_requested(loop, interval):
    # gevent_c returns the requested value; 22.10.2 reported the clamped/float32 one
    st = loop.stat('/tmp', interval)
    try:
        assert st.interval == interval
    finally:
        st.close()


@pytest.mark.parametrize('interval', [0.01, 0.0, 2.5])
def test_interval_kept_after_start(loop, interval):
    st = loop.stat('/tmp', interval)
    try:
        st.start(lambda: None)
        assert st.interval == interval
    finally:
        st.close()


def test_negative_interval_reads_back_period_in_use(loop):
    # gevent's test__core_stat: -1 echoes until started, then it is not -1
    # (both gevent loops report the minimum period they use)
    st = loop.stat('/tmp', -1)
    try:
        assert st.interval == -1
        st.start(lambda: None)
        assert st.interval == pytest.approx(0.1074891)
        st.stop()
        assert st.interval == pytest.approx(0.1074891)
    finally:
        st.close()


def test_interval_default(loop):
    st = loop.stat('/tmp')
    try:
        assert st.interval == 0.0
    finally:
        st.close()


def test_repr_shows_path(loop):
    st = loop.stat('/tmp', 1)
    try:
        assert repr(st).startswith('<stat at 0x'), repr(st)
        assert "path='/tmp'" in repr(st), repr(st)
    finally:
        st.close()


def test_stat_on_private_loop(L, tmp_path):
    f = tmp_path / 'f'
    hits = []
    st = L.stat(str(f), 0.01)

    def cb():
        hits.append(st.attr is not None)
        st.stop()

    st.start(cb)
    t = L.timer(0.05)
    t.start(f.write_bytes, b'x')
    guard = L.timer(2)
    guard.ref = False
    guard.start(st.stop)
    L.run()  # the referenced stat watcher keeps run() going until it fired
    assert hits == [True]
    st.close()
    guard.close()


def test_stat_error_keeps_watcher_active(loop, stream, tmp_path):
    f = tmp_path / 'f'
    st = loop.stat(str(f), 0.01)
    try:
        st.start(lambda: 1 / 0)
        H.sleep(0.05)
        f.write_bytes(b'x')
        assert _wait_for(lambda: 'failed with ZeroDivisionError' in stream.getvalue())
        assert '<stat at 0x' in stream.getvalue(), stream.getvalue()
        assert st.active is True
    finally:
        st.close()


def test_several_stat_watchers_same_path(loop, tmp_path):
    f = tmp_path / 'f'
    hits = []
    ws = [loop.stat(str(f), 0.01) for _ in range(3)]
    try:
        for i, w in enumerate(ws):
            w.start(hits.append, i)
        H.sleep(0.05)
        f.write_bytes(b'x')
        assert _wait_for(lambda: len(set(hits)) == 3), hits
    finally:
        for w in ws:
            w.close()


def test_destroy_loop_with_active_stat_watchers(check_py, tmp_path):
    # gevent 22.10.2 leaves stale state and the next default loop aborts or
    # segfaults; gevent_c closes every handle of the old loop.
    out = check_py('''
        import os, time
        import gevent_c.hub as H
        d = %r
        hub = H.get_hub()
        ws = [hub.loop.stat(os.path.join(d, 'a%%d' %% i), 0.01) for i in range(5)]
        for w in ws:
            w.start(lambda: None)
        H.sleep(0.05)
        hub.destroy(destroy_loop=True)
        hub2 = H.get_hub()
        assert hub2 is not hub
        hits = []
        st = hub2.loop.stat(os.path.join(d, 'b'), 0.01)
        st.start(hits.append, 1)
        H.sleep(0.05)
        open(os.path.join(d, 'b'), 'w').close()
        deadline = time.monotonic() + 1
        while not hits and time.monotonic() < deadline:
            H.sleep(0.02)
        assert hits == [1], hits
        st.close()
        for w in ws:
            w.stop(); w.close()
        hub2.destroy(destroy_loop=True)
        print('ok')
    ''' % str(tmp_path), timeout=15)
    assert 'ok' in out


def test_restart_while_stat_in_flight_does_not_abort(check_py):
    # libuv 1.44 asserts when a fs_poll handle restarts while its previous
    # stat() is still pending (found by the API fuzzer)
    out = check_py('''
        import gevent_c.hub as H
        loop = H.get_hub().loop
        w = loop.stat('/tmp', 0.0)
        for _ in range(50):
            w.start(lambda: None)
            w.start(lambda: None)
            w.stop()
        w.start(lambda: None)
        H.sleep(0.3)
        w.close()
        print('alive')
    ''')
    assert out.strip() == 'alive'


def test_change_right_after_start_is_reported(loop, tmp_path):
    # The baseline is the stat() made in start(): a file created right after
    # start() is a change (libuv's fs_poll took its own baseline later, in
    # its threadpool, and could miss it; libev reports it).
    path = tmp_path / 'early'
    for _ in range(20):
        if path.exists():
            path.unlink()
        st = loop.stat(str(path), 0.0)
        hits = []
        st.start(lambda: hits.append((st.attr is not None, st.prev is not None)))
        path.write_bytes(b'x')
        try:
            for _ in range(100):
                H.sleep(0.01)
                if hits:
                    break
            assert hits and hits[0] == (True, False), hits
        finally:
            st.close()


def test_stat_watchers_start_no_threads(check_py):
    # each tick's stat() runs on the loop's thread: no threadpool to start,
    # none to wait for when the loop is destroyed, nothing to lose at fork()
    out = check_py('''
        import os, tempfile
        import gevent_c.core as core
        import gevent_c.hub as H
        def nthreads():
            return len(os.listdir('/proc/self/task'))
        before = nthreads()
        d = tempfile.mkdtemp()
        loop = H.get_hub().loop
        ws = [loop.stat(os.path.join(d, str(i)), 0.0) for i in range(8)]
        for w in ws:
            w.start(lambda: None)
        H.sleep(0.3)
        assert nthreads() == before, (before, nthreads())
        L = core.loop(default=False)
        s2 = L.stat(d, 0.0)
        s2.start(lambda: None)
        L.run(nowait=True)
        L.destroy()
        print('ok')
    ''', timeout=15)
    assert 'ok' in out
