"""Exceptions and module names of gevent_c.hub (docs/semantics.md, 'Names and exceptions')."""
import greenlet
import pytest

import gevent_c.hub as H

EXC_NAMES = ['GreenletExit', 'LoopExit', 'BlockingSwitchOutError', 'InvalidSwitchError',
             'ConcurrentObjectUseError', 'InvalidThreadUseError', 'HubDestroyed']

SKELETON_NAMES = ['getcurrent', 'GreenletExit', 'spawn_raw', 'sleep', 'kill', 'get_hub',
                  'get_hub_class', 'set_hub', '_get_hub', 'get_hub_if_exists', 'Hub',
                  'Waiter', 'LoopExit']


def test_greenlet_exit_is_greenlets():
    assert H.GreenletExit is greenlet.GreenletExit


def test_getcurrent_is_greenlets():
    assert H.getcurrent is greenlet.getcurrent


@pytest.mark.parametrize('name', ['BlockingSwitchOutError', 'InvalidSwitchError',
                                  'ConcurrentObjectUseError'])
def test_assertion_error_subclasses(name):
    assert issubclass(getattr(H, name), AssertionError)


def test_loop_exit_base():
    assert issubclass(H.LoopExit, Exception)
    assert not issubclass(H.LoopExit, AssertionError)


def test_invalid_thread_use_error_base():
    assert issubclass(H.InvalidThreadUseError, RuntimeError)


def test_hub_destroyed_base():
    assert issubclass(H.HubDestroyed, H.GreenletExit)


def test_hub_destroyed_has_destroy_loop():
    assert H.HubDestroyed(True).destroy_loop is True
    assert H.HubDestroyed(False).destroy_loop is False


@pytest.mark.parametrize('name', EXC_NAMES)
def test_exceptions_also_in_gevent_c_exceptions(name):
    import gevent_c.exceptions as E
    assert getattr(E, name) is getattr(H, name)


def test_loop_exit_hub_property(hub):
    e = H.LoopExit('This operation would block forever', hub, [])
    assert e.hub is hub
    assert H.LoopExit('message only').hub is None
    assert H.LoopExit().hub is None


@pytest.mark.parametrize('name', SKELETON_NAMES + EXC_NAMES)
def test_skeleton_names_present(name):
    assert hasattr(H, name)


def test_all():
    assert H.__all__ == ['getcurrent', 'GreenletExit', 'spawn_raw', 'sleep', 'kill',
                         'signal', 'reinit', 'get_hub', 'Hub', 'Waiter']


def test_all_skeleton_subset():
    # Whatever __all__ holds, every name in it must exist, and the skeleton's
    # public names that are in gevent's __all__ must be listed.
    for name in H.__all__:
        assert hasattr(H, name), name
    for name in ['getcurrent', 'GreenletExit', 'spawn_raw', 'sleep', 'kill', 'get_hub',
                 'Hub', 'Waiter']:
        assert name in H.__all__
