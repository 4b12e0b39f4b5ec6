"""spawn_raw() (docs/semantics.md, 'spawn_raw')."""
import re

import greenlet
import pytest

import gevent_c.hub as H
from _util import last_line, untimed


def test_unstarted_until_hub_runs(hub):
    log = []
    g = H.spawn_raw(log.append, 'x')
    assert log == []
    assert not g
    assert not g.dead
    assert g.parent is H.get_hub()
    H.sleep(0)
    assert log == ['x']
    assert g.dead


def test_returns_greenlet(hub):
    g = H.spawn_raw(lambda: None)
    assert isinstance(g, greenlet.greenlet)
    H.sleep(0)
    assert g.dead


def test_greenlet_loop_attribute(hub):
    g = H.spawn_raw(lambda: None)
    assert g.loop is hub.loop
    H.sleep(0)


def test_args_and_kwargs(hub):
    calls = []

    def f(*args, **kwargs):
        calls.append((args, kwargs))

    H.spawn_raw(f, 1, b=2)
    H.sleep(0)
    assert calls == [((1,), {'b': 2})]


def test_positional_args(hub):
    calls = []
    H.spawn_raw(lambda *a: calls.append(a), 1, 2, 3)
    H.sleep(0)
    assert calls == [(1, 2, 3)]


def test_kwargs_only(hub):
    calls = []
    H.spawn_raw(lambda **kw: calls.append(kw), x=1)
    H.sleep(0)
    assert calls == [{'x': 1}]


@pytest.mark.parametrize('bad', [42, None, 'string'])
def test_not_callable(hub, bad):
    with pytest.raises(TypeError) as ei:
        H.spawn_raw(bad)
    assert str(ei.value) == 'function must be callable'


def test_not_callable_schedules_nothing(loop):
    H.sleep(0)
    before = loop.activecnt
    with pytest.raises(TypeError):
        H.spawn_raw(42)
    assert loop.activecnt == before


def test_runs_in_order_of_spawning(hub):
    log = []
    for i in range(5):
        H.spawn_raw(log.append, i)
    H.sleep(0)
    assert log == [0, 1, 2, 3, 4]


def test_runs_on_its_own_greenlet(hub):
    seen = []
    g = H.spawn_raw(lambda: seen.append(greenlet.getcurrent()))
    H.sleep(0)
    assert seen == [g]
    assert seen[0] is not hub
    assert seen[0] is not greenlet.getcurrent()


def test_return_value_dropped(hub):
    g = H.spawn_raw(lambda: 'dropped')
    assert H.sleep(0) is None
    assert g.dead


def test_error_reported_by_hub(hub, stream):
    H.spawn_raw(lambda: 1 / 0)
    H.sleep(0.01)  # returns normally: main is not interrupted
    assert re.match(r'^<callback at 0x[0-9a-f]+.*> failed with ZeroDivisionError$',
                    untimed(last_line(stream))), stream.getvalue()
    assert 'ZeroDivisionError: division by zero' in stream.getvalue()


def test_error_hub_continues(hub, stream):
    log = []
    H.spawn_raw(lambda: 1 / 0)
    H.spawn_raw(log.append, 'after')
    H.sleep(0.01)
    assert log == ['after']
    assert not hub.dead


def test_greenlet_exit_is_quiet(hub, stream):
    def f():
        raise H.GreenletExit

    g = H.spawn_raw(f)
    H.sleep(0.01)
    assert g.dead
    assert stream.getvalue() == ''


def test_spawned_greenlet_can_block(hub):
    log = []

    def f():
        log.append('start')
        H.sleep(0.01)
        log.append('end')

    g = H.spawn_raw(f)
    H.sleep(0)
    assert log == ['start']
    H.sleep(0.05)
    assert log == ['start', 'end']
    assert g.dead


def test_system_exit_in_spawned_greenlet_reaches_main(hub, stream):
    import sys
    H.spawn_raw(sys.exit, 4)
    with pytest.raises(SystemExit) as ei:
        H.sleep(0.01)
    assert ei.value.code == 4
    H.sleep(0.001)
    assert not hub.dead


def test_spawn_from_spawned_greenlet(hub):
    log = []

    def outer():
        H.spawn_raw(log.append, 'inner')
        log.append('outer')

    H.spawn_raw(outer)
    H.sleep(0.001)
    assert log == ['outer', 'inner']
