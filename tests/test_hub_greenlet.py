"""The Hub type as a greenlet subclass: construction, class and instance
attributes, switch/switch_out and run() (docs/semantics.md, 'The Hub object')."""
import io
import pprint
import sys
import threading

import greenlet
import pytest

import gevent_c.hub as H
import gevent_c.core as core


def test_hub_is_greenlet_subclass():
    assert issubclass(H.Hub, greenlet.greenlet)


def test_get_hub_returns_hub_instance(hub):
    assert isinstance(hub, H.Hub)
    assert isinstance(hub, greenlet.greenlet)


def test_subclassable_from_python(hub):
    class MyHub(H.Hub):
        extra = 'x'

        def custom(self):
            return 42

    h = MyHub(hub.loop)
    assert isinstance(h, H.Hub)
    assert isinstance(h, greenlet.greenlet)
    assert h.custom() == 42
    assert h.extra == 'x'
    assert h.loop is hub.loop


def test_hub_parent_is_main_greenlet(hub):
    assert greenlet.getcurrent().parent is None  # the test runs in main
    assert hub.parent is greenlet.getcurrent()
    assert not hub.dead


def test_new_hub_not_started(hub):
    h = H.Hub(hub.loop)
    assert not h.dead
    assert not bool(h)
    assert h.parent is greenlet.getcurrent()


def test_hub_not_started_before_use_fresh(check_py):
    check_py('''
        import greenlet
        import gevent_c.hub as H
        h = H.get_hub()
        assert not h.dead
        assert not bool(h)
        assert h.parent is greenlet.getcurrent()
        H.sleep(0)
        assert bool(h)          # started and suspended
        assert not h.dead
    ''')


def test_arbitrary_instance_attributes(hub):
    h = H.Hub(hub.loop)
    h.some_new_attribute = [1, 2]
    assert h.some_new_attribute == [1, 2]
    hub.another_attr = 'v'
    try:
        assert hub.another_attr == 'v'
    finally:
        del hub.another_attr
    assert not hasattr(hub, 'another_attr')


def test_constructor_loop_argument(hub):
    assert H.Hub(hub.loop).loop is hub.loop


def test_constructor_loop_and_default_is_type_error(hub):
    with pytest.raises(TypeError):
        H.Hub(hub.loop, default=True)


def test_constructor_default_false():
    h = H.Hub(default=False)
    assert h.loop.default is False
    h.loop.destroy()


def test_constructor_bogus_flags():
    with pytest.raises(ValueError):
        H.Hub('bogus', False)


# ---- class attributes


def test_class_attr_threadpool_size():
    assert H.Hub.threadpool_size == 10


def test_class_attr_system_error():
    assert H.Hub.SYSTEM_ERROR == (KeyboardInterrupt, SystemExit, SystemError)


def test_class_attr_not_error():
    assert H.Hub.NOT_ERROR == (greenlet.GreenletExit, SystemExit)


def test_class_attr_format_context():
    assert H.Hub.format_context == 'pprint.pformat'


def test_class_attr_name():
    assert H.Hub.name == ''


def test_class_attr_thread_ident():
    assert H.Hub.thread_ident is None


def test_class_attr_lists_default_env(check_py):
    out = check_py('''
        import os
        assert not [k for k in os.environ if k.startswith('GEVENT_')]
        import gevent_c.hub as H
        assert H.Hub.loop_class == ['gevent_c.core.loop'], H.Hub.loop_class
        assert H.Hub.resolver_class == ['gevent_c.resolver_thread.Resolver',
                                        'gevent_c.resolver_ares.Resolver',
                                        'gevent_c.socket.BlockingResolver'], H.Hub.resolver_class
        assert H.Hub.threadpool_class == ['gevent_c.threadpool.ThreadPool'], H.Hub.threadpool_class
        assert H.Hub.backend is None, H.Hub.backend
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_not_error_per_instance_extension(hub, stream):
    hub.NOT_ERROR += (KeyError,)
    assert KeyError in hub.NOT_ERROR
    assert H.Hub.NOT_ERROR == (greenlet.GreenletExit, SystemExit)
    hub.handle_error('ctx', KeyError, KeyError('k'), None)
    assert stream.getvalue() == ''


# ---- instance attributes


def test_instance_attributes(hub):
    assert hub.thread_ident == threading.get_ident()
    assert hub.main_hub is True
    assert hub.name == ''
    assert hub.loop.default is True
    assert isinstance(hub.loop, core.loop)
    assert hub.format_context is pprint.pformat


def test_main_hub_read_only(hub):
    with pytest.raises((AttributeError, TypeError)):
        hub.main_hub = False
    assert hub.main_hub is True


def test_name_settable(hub):
    hub.name = 'named'
    assert hub.name == 'named'
    # the fixture restores it


def test_exception_stream_dynamic_default(hub):
    assert hub.exception_stream is sys.stderr
    old = sys.stderr
    new = io.StringIO()
    sys.stderr = new
    try:
        assert hub.exception_stream is new
    finally:
        sys.stderr = old
    assert hub.exception_stream is old


def test_exception_stream_assign_and_del(hub):
    s = io.StringIO()
    hub.exception_stream = s
    try:
        assert hub.exception_stream is s
    finally:
        del hub.exception_stream
    assert hub.exception_stream is sys.stderr


def test_exception_stream_none(hub):
    hub.exception_stream = None
    try:
        assert not hub.exception_stream
    finally:
        del hub.exception_stream
    assert hub.exception_stream is sys.stderr


# ---- switch / switch_out


def test_switch_out_raises_blocking_switch_out_error(hub):
    with pytest.raises(H.BlockingSwitchOutError) as ei:
        hub.switch_out()
    assert str(ei.value) == 'Impossible to call blocking function in the event loop callback'
    assert isinstance(ei.value, AssertionError)


def test_switch_with_args_is_type_error(check_py):
    check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        try:
            hub.switch(1)
        except TypeError:
            pass
        else:
            raise AssertionError('hub.switch(1) did not raise TypeError')
        H.sleep(0.001)
    ''', timeout=10)


def test_switch_calls_switch_out_of_current(hub):
    calls = []

    def f():
        greenlet.getcurrent().switch_out = lambda: calls.append(1)
        H.sleep(0)

    g = H.spawn_raw(f)
    H.sleep(0)
    H.sleep(0)
    assert calls == [1]
    assert g.dead


def test_switch_from_main_with_callback_returns_value(hub):
    # hub.switch() from main blocks until something switches back to main.
    main = greenlet.getcurrent()
    hub.loop.run_callback(main.switch, 'back')
    assert hub.switch() == 'back'


# ---- run()


def test_run_directly_is_assertion_error(check_py):
    check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        try:
            hub.run()
        except AssertionError as e:
            assert str(e) == 'Do not call Hub.run() directly', str(e)
        else:
            raise AssertionError('no error')
    ''', timeout=10)


def test_error_handler_only_set_inside_run(check_py):
    check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        loop = hub.loop
        assert loop.error_handler is None
        seen = []
        loop.run_callback(lambda: seen.append(loop.error_handler))
        assert hub.join() is True
        assert seen and seen[0] is hub, seen
        assert loop.error_handler is None, loop.error_handler
    ''', timeout=10)


def test_repr(hub):
    r = repr(hub)
    assert r.startswith("<Hub '' at 0x"), r
    assert 'default' in r, r
    assert 'thread_ident=0x' in r, r
    assert r.endswith('>'), r
