"""gevent_c.gevent_loop: the optional Python bridge for GEVENT_LOOP
(docs/differences.md): backend names libuv lacks are dropped with a RuntimeWarning,
others are validated by the C loop, debug() is the C loop's."""
import warnings

import pytest

import gevent_c.core as core
import gevent_c.gevent_loop as gl


def test_is_the_c_loop():
    lp = gl.loop(default=False)
    try:
        assert isinstance(lp, core.loop)
        assert lp.backend == 'epoll'
        # the C loop's debug(): its libuv handles, as gevent's libuv loop lists them
        types = sorted(h.type for h in lp.debug())
        assert b'async' in types and b'prepare' in types, types
    finally:
        lp.destroy()


@pytest.mark.parametrize('flags', ['select', 'poll,epoll', 'SELECT'])
def test_libev_backends_libuv_lacks_are_dropped_with_a_warning(flags):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        lp = gl.loop(flags, False)
    try:
        assert lp.backend == 'epoll'
        assert [w.category for w in caught] == [RuntimeWarning], caught
        assert 'no ' in str(caught[0].message)
    finally:
        lp.destroy()


def test_supported_backend_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        lp = gl.loop('epoll', False)
    lp.destroy()


def test_unknown_words_still_rejected():
    with pytest.raises(ValueError):
        gl.loop('nonsense', False)


def test_module_offers_what_gevent_core_copies():
    # gevent.core copies the globals of the loop class's module
    for name in ('loop', 'READ', 'WRITE', 'supported_backends', 'timer', 'io'):
        assert name in gl.__all__ or hasattr(gl, name), name
    assert gl.READ == core.READ
