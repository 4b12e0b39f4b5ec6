"""Import has no side effect; hub lookup and hubs per thread
(docs/semantics.md, 'Hub lookup')."""
import threading

import gevent_c.hub as H


def test_import_creates_no_hub_and_no_gevent(check_py):
    out = check_py('''
        import sys
        import gevent_c.hub as H
        assert H._get_hub() is None
        assert H.get_hub_if_exists() is None
        assert 'gevent' not in sys.modules
        assert not [m for m in sys.modules if m == 'gevent' or m.startswith('gevent.')]
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_lookup_functions_fresh(check_py):
    check_py('''
        import gevent_c.hub as H
        assert H._get_hub() is None
        assert H.get_hub_if_exists() is None
        h = H.get_hub()
        assert isinstance(h, H.Hub)
        assert H.get_hub() is h
        assert H._get_hub() is h
        assert H.get_hub_if_exists() is h
        assert H.get_hub_class() is H.Hub
    ''')


def test_get_hub_if_exists_is_get_hub():
    # "_get_hub() and get_hub_if_exists() are the same function"
    assert H._get_hub is H.get_hub_if_exists


def test_lookup_in_process(hub):
    assert H.get_hub() is hub
    assert H._get_hub() is hub
    assert H.get_hub_if_exists() is hub
    assert H.get_hub_class() is H.Hub


def test_get_hub_args_ignored_when_hub_exists(hub):
    assert H.get_hub(None, False) is hub
    assert hub.loop.default is True


def test_set_hub_none_then_new_hub(check_py):
    check_py('''
        import gevent_c.hub as H
        h = H.get_hub()
        H.set_hub(None)
        assert H._get_hub() is None
        h2 = H.get_hub()
        assert h2 is not h
        assert isinstance(h2, H.Hub)
    ''')


def test_set_hub_subclass_instance(check_py):
    check_py('''
        import gevent_c.hub as H
        class My(H.Hub):
            pass
        H.set_hub(My())
        assert type(H.get_hub()) is My
        assert type(H._get_hub()) is My
        H.sleep(0.001)            # the subclass instance works as the hub
    ''')


def test_set_hub_takes_a_greenlet_or_none(check_py):
    # anything else fails at once (as gevent's, which wants its hub type), not
    # at the next sleep() or wait
    check_py('''
        import greenlet
        import gevent_c.hub as H
        h = H.get_hub()
        for junk in (42, object(), 'hub', H.Hub):
            try:
                H.set_hub(junk)
            except TypeError as e:
                assert 'greenlet' in str(e) and type(junk).__name__ in str(e), e
            else:
                raise AssertionError(junk)
            assert H._get_hub() is h
        g = greenlet.greenlet(lambda: None)
        H.set_hub(g)
        assert H._get_hub() is g and H.get_hub() is g
        H.set_hub(None)
        assert H._get_hub() is None
    ''')


def test_get_hub_args_used_on_creation(check_py):
    check_py('''
        import gevent_c.hub as H
        h = H.get_hub(None, False)
        assert h.loop.default is False
        assert H.get_hub(None, True) is h
        assert h.loop.default is False
    ''')


def test_one_hub_per_thread(hub):
    res = {}

    def target():
        res['before'] = H._get_hub()
        h = H.get_hub()
        res['hub'] = h
        res['again'] = H.get_hub()
        res['default'] = h.loop.default
        res['main_hub'] = h.main_hub
        res['thread_ident'] = h.thread_ident == threading.get_ident()

    t = threading.Thread(target=target)
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert res['before'] is None
    assert res['hub'] is not hub
    assert isinstance(res['hub'], H.Hub)
    assert res['again'] is res['hub']
    assert res['default'] is False
    assert res['main_hub'] is False
    assert res['thread_ident'] is True
    # main's hub is unaffected
    assert H.get_hub() is hub
    assert hub.loop.default
    assert hub.main_hub


def test_thread_sleep_creates_thread_hub(hub):
    res = {}

    def target():
        res['before'] = H._get_hub()
        H.sleep(0.01)
        res['after'] = H._get_hub()

    t = threading.Thread(target=target)
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert res['before'] is None
    assert res['after'] is not None
    assert res['after'] is not hub


def test_thread_hub_released_when_thread_exits(check_py):
    # a thread's hub (and its loop's fds) go away with
    # the thread, even without an explicit destroy()
    out = check_py('''
        import gc, os, threading, weakref
        import gevent_c.hub as H
        refs = []
        def f():
            h = H.get_hub()
            H.sleep(0.001)
            refs.append((weakref.ref(h), weakref.ref(h.loop)))
        n0 = len(os.listdir('/proc/self/fd'))
        for _ in range(20):
            t = threading.Thread(target=f)
            t.start()
            t.join()
        gc.collect()
        alive = sum(1 for h, l in refs if h() is not None or l() is not None)
        print(alive, len(os.listdir('/proc/self/fd')) - n0)
    ''')
    alive, fds = map(int, out.split())
    assert alive == 0
    assert fds <= 2


def test_set_hub_replacing_does_not_destroy(check_py):
    out = check_py('''
        import threading
        import gevent_c.hub as H
        res = []
        def f():
            a = H.get_hub()
            b = H.Hub()
            H.set_hub(b)
            res.append(a.loop is not None)
            H.set_hub(a)
            res.append(b.loop is not None)
            b.destroy()
        t = threading.Thread(target=f)
        t.start()
        t.join()
        print(res)
    ''')
    assert out.strip() == '[True, True]'
