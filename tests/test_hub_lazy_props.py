"""hub.threadpool / hub.resolver lazy properties, their class lists and
environment variables, repr, and destroy closing them (docs/semantics.md,
'The Hub object').

Each test runs in a fresh interpreter, because the properties are created
once per hub and the class lists are read when gevent_c.hub is imported."""
import textwrap


def test_threadpool_lazy_property(check_py):
    out = check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        assert hub._threadpool is None
        tp = hub.threadpool
        import gevent_c.threadpool
        assert type(tp) is gevent_c.threadpool.ThreadPool, type(tp)
        assert hub.threadpool is tp
        assert hub._threadpool is tp
        assert tp.hub is hub
        assert tp.maxsize == 10 == hub.threadpool_size, tp.maxsize
        assert tp.size == 0
        # threadpool_class is resolved and stored on the instance only
        assert hub.threadpool_class is gevent_c.threadpool.ThreadPool, hub.threadpool_class
        assert H.Hub.threadpool_class == ['gevent_c.threadpool.ThreadPool'], H.Hub.threadpool_class
        assert tp.spawn(lambda: 5).get() == 5
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_threadpool_assign_and_delete(check_py):
    # Set and delete work as for resolver: assigning stores any object; del or
    # assigning None makes the next read create a fresh one.
    out = check_py('''
        import gevent_c.hub as H
        from gevent_c.threadpool import ThreadPool
        hub = H.get_hub()
        first = hub.threadpool
        obj = object()
        hub.threadpool = obj
        assert hub.threadpool is obj
        del hub.threadpool
        fresh = hub.threadpool
        assert type(fresh) is ThreadPool and fresh is not first and fresh is not obj
        hub.threadpool = None
        fresh2 = hub.threadpool
        assert type(fresh2) is ThreadPool and fresh2 is not fresh
        mine = ThreadPool(2)
        hub.threadpool = mine
        assert hub.threadpool is mine
        assert hub.threadpool.apply(lambda: 'x') == 'x'
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_check_threadpool_size_before_first_use(check_py):
    # check: hub.threadpool_size = 3 before first use -> hub.threadpool.maxsize == 3
    out = check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        hub.threadpool_size = 3
        assert hub.threadpool.maxsize == 3, hub.threadpool.maxsize
        # a later change does not affect the existing pool
        hub.threadpool_size = 5
        assert hub.threadpool.maxsize == 3
        del hub.threadpool
        assert hub.threadpool.maxsize == 5
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_check_resolver_lazy_property(check_py):
    # check: hub.resolver is hub.resolver. hub.resolver = obj; hub.resolver is obj.
    # del hub.resolver; type(hub.resolver).__name__ == 'Resolver'.
    out = check_py('''
        import sys
        import gevent_c.hub as H
        hub = H.get_hub()
        assert hub._resolver is None
        assert 'gevent_c.resolver_thread' not in sys.modules
        r = hub.resolver
        assert hub.resolver is r
        assert hub._resolver is r
        assert type(r).__name__ == 'Resolver'
        assert type(r).__module__ == 'gevent_c.resolver_thread', type(r).__module__
        obj = object()
        hub.resolver = obj
        assert hub.resolver is obj
        del hub.resolver
        r2 = hub.resolver
        assert type(r2).__name__ == 'Resolver' and r2 is not r
        hub.resolver = None
        r3 = hub.resolver
        assert type(r3).__name__ == 'Resolver' and r3 is not r2
        assert r3.gethostbyname('localhost') == '127.0.0.1'
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_check_resolver_late_binding(check_py):
    # check (late binding): both class lists are lists before; after h.resolver,
    # h.resolver_class is gevent_c.resolver_thread.Resolver, H.Hub's is a list.
    out = check_py('''
        import gevent_c.hub as H
        h = H.get_hub()
        assert isinstance(H.Hub.resolver_class, list)
        assert isinstance(h.resolver_class, list)
        h.resolver
        import gevent_c.resolver_thread
        assert h.resolver_class is gevent_c.resolver_thread.Resolver, h.resolver_class
        assert isinstance(H.Hub.resolver_class, list)
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_repr_shows_resolver_and_threadpool(check_py):
    out = check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        text = repr(hub)
        assert 'resolver=' not in text and 'threadpool=' not in text, text
        hub.resolver
        assert 'resolver=' in repr(hub), repr(hub)
        hub.threadpool
        assert 'threadpool=' in repr(hub), repr(hub)
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_destroy_kills_pool_and_clears_both(check_py):
    # 4.10 step 2: if a resolver was created, close() it; if a threadpool was
    # created, kill() it. Set both to None.
    out = check_py('''
        import time
        import gevent_c.hub as H
        hub = H.get_hub()
        tp = hub.threadpool
        assert tp.spawn(lambda: 1).get() == 1
        assert tp.size == 1
        r = hub.resolver
        hub.destroy()
        assert hub._threadpool is None, hub._threadpool
        assert hub._resolver is None, hub._resolver
        assert tp.size == 0, tp.size
        # a fresh hub gets a fresh pool
        h2 = H.get_hub()
        assert h2 is not hub
        assert h2.threadpool is not tp
        assert h2.threadpool.spawn(lambda: 2).get() == 2
        print('ok')
    ''')
    assert out.strip() == 'ok'


# --- 4.3 environment variables, each in a subprocess


def test_env_resolver_block(check_py):
    # GEVENT_RESOLVER=block -> type(hub.resolver) is gevent_c.socket.BlockingResolver,
    # and H.Hub.resolver_class == ['gevent_c.socket.BlockingResolver'].
    out = check_py('''
        import gevent_c.hub as H
        import gevent_c.socket
        hub = H.get_hub()
        assert H.Hub.resolver_class == ['gevent_c.socket.BlockingResolver'], H.Hub.resolver_class
        assert type(hub.resolver) is gevent_c.socket.BlockingResolver, type(hub.resolver)
        print(type(hub.resolver).__module__, type(hub.resolver).__name__)
    ''', env={'GEVENT_RESOLVER': 'block'})
    assert out.split() == ['gevent_c.socket', 'BlockingResolver']


def test_env_resolver_fall_through_to_thread(check_py):
    # GEVENT_RESOLVER=bogus.mod.R,thread -> the thread resolver.
    out = check_py('''
        import gevent_c.hub as H
        import gevent_c.resolver_thread
        hub = H.get_hub()
        assert type(hub.resolver) is gevent_c.resolver_thread.Resolver, type(hub.resolver)
        assert hub.resolver.gethostbyname('localhost') == '127.0.0.1'
        print(type(hub.resolver).__module__, type(hub.resolver).__name__)
    ''', env={'GEVENT_RESOLVER': 'bogus.mod.R,thread'})
    assert out.split() == ['gevent_c.resolver_thread', 'Resolver']


def test_env_resolver_whitespace_stripped(check_py):
    # whitespace around list items is stripped
    out = check_py('''
        import gevent_c.hub as H
        print(type(H.get_hub().resolver).__module__)
    ''', env={'GEVENT_RESOLVER': 'bogus.mod.R, block'})
    assert out.strip() == 'gevent_c.socket'


def test_env_resolver_nodots(check_py):
    # GEVENT_RESOLVER=nodots -> hub.resolver raises ImportError mentioning
    # 'required format'. Hub creation itself succeeds.
    out = check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        H.sleep(0.001)
        try:
            hub.resolver
        except ImportError as e:
            assert 'required format' in str(e), str(e)
            print('ImportError')
        else:
            raise AssertionError('no ImportError')
    ''', env={'GEVENT_RESOLVER': 'nodots'})
    assert out.strip() == 'ImportError'


def test_env_threadpool_nope(check_py):
    # GEVENT_THREADPOOL=nope.Pool -> hub.threadpool raises ImportError.
    out = check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        assert H.Hub.threadpool_class == ['nope.Pool'], H.Hub.threadpool_class
        try:
            hub.threadpool
        except ImportError:
            print('ImportError')
        else:
            raise AssertionError('no ImportError')
        assert hub._threadpool is None
    ''', env={'GEVENT_THREADPOOL': 'nope.Pool'})
    assert out.strip() == 'ImportError'


def test_env_threadpool_custom_class(check_py, tmp_path):
    # GEVENT_THREADPOOL with the '/' form: the class is called as
    # cls(threadpool_size, hub=hub) on first read of hub.threadpool.
    (tmp_path / 'mypool.py').write_text(textwrap.dedent('''
        from gevent_c.threadpool import ThreadPool
        calls = []
        class MyPool(ThreadPool):
            def __init__(self, *args, **kwargs):
                calls.append((args, kwargs))
                ThreadPool.__init__(self, *args, **kwargs)
    '''))
    out = check_py('''
        import sys
        import gevent_c.hub as H
        hub = H.get_hub()
        tp = hub.threadpool
        assert type(tp).__name__ == 'MyPool', type(tp)
        mod = sys.modules[type(tp).__module__]
        assert mod.calls == [((10,), {'hub': hub})], mod.calls
        assert tp.apply(lambda: 3) == 3
        print('ok')
    ''', env={'GEVENT_THREADPOOL': str(tmp_path) + '/mypool.MyPool'})
    assert out.strip() == 'ok'
