"""kill() (docs/semantics.md, 'kill')."""
import greenlet

import gevent_c.hub as H
from _util import last_line


def test_kill_is_asynchronous(hub):
    g = H.spawn_raw(lambda: H.sleep(10))
    H.sleep(0)
    r = H.kill(g)
    assert r is None
    assert not g.dead
    H.sleep(0)
    assert g.dead


def test_kill_default_is_greenlet_exit(hub):
    got = []

    def f():
        try:
            H.sleep(10)
        except BaseException as e:  # noqa: BLE001
            got.append(type(e))
            raise

    g = H.spawn_raw(f)
    H.sleep(0)
    H.kill(g)
    H.sleep(0)
    assert got == [greenlet.GreenletExit]
    assert g.dead


def test_kill_with_exception_class(hub):
    got = []

    def f():
        try:
            H.sleep(10)
        except Exception as e:  # noqa: BLE001
            got.append(type(e))

    g = H.spawn_raw(f)
    H.sleep(0)
    H.kill(g, ValueError)
    H.sleep(0)
    assert got == [ValueError]
    assert g.dead


def test_kill_with_exception_instance(hub):
    got = []
    err = ValueError('inst')

    def f():
        try:
            H.sleep(10)
        except Exception as e:  # noqa: BLE001
            got.append(e)

    g = H.spawn_raw(f)
    H.sleep(0)
    H.kill(g, err)
    H.sleep(0)
    assert got == [err]
    assert got[0] is err


def test_kill_dead_greenlet(hub):
    g = H.spawn_raw(lambda: None)
    H.sleep(0)
    assert g.dead
    assert H.kill(g) is None
    H.sleep(0)


def test_kill_dead_plain_greenlet(hub):
    g = greenlet.greenlet(lambda: None)
    g.switch()
    assert g.dead
    assert H.kill(g) is None
    assert H.kill(g, ValueError) is None
    H.sleep(0)


def test_kill_uncaught_greenlet_exit_is_quiet(hub, stream):
    g = H.spawn_raw(lambda: H.sleep(10))
    H.sleep(0)
    H.kill(g)
    H.sleep(0.01)
    assert g.dead
    assert stream.getvalue() == ''


def test_kill_uncaught_other_exception_reported(hub, stream):
    g = H.spawn_raw(lambda: H.sleep(10))
    H.sleep(0)
    H.kill(g, ValueError)
    H.sleep(0.01)  # main not interrupted
    assert g.dead
    assert last_line(stream).endswith('failed with ValueError'), stream.getvalue()


def test_kill_before_first_run_still_runs_first_segment(hub):
    log = []

    def f():
        log.append('started')
        H.sleep(10)
        log.append('not reached')

    g = H.spawn_raw(f)
    H.kill(g)
    assert not g.dead
    H.sleep(0)
    assert log == ['started']
    assert g.dead


def test_kill_releases_sleep_timer(loop):
    H.sleep(0)
    base = loop.activecnt
    g = H.spawn_raw(H.sleep, 10)
    H.sleep(0)
    H.kill(g)
    H.sleep(0)
    assert g.dead
    assert loop.activecnt == base


def test_kill_duck_typed_kill_method(hub):
    calls = []

    class FakeGreenlet:
        dead = False

        def kill(self, *args, **kwargs):
            calls.append((args, kwargs))

    H.kill(FakeGreenlet(), ValueError)
    assert calls == [((), {'exception': ValueError, 'block': False})]
