"""gevent_c.resolver_thread.Resolver (docs/semantics.md, 'Resolvers'),
plus a resolver leak check. No test depends on network DNS: only 'localhost', '127.0.0.1' and
AI_NUMERICHOST failures are used."""
import _socket
import gc
import re
import socket
import sys
import threading
import time

import pytest

import gevent_c.hub as H
from gevent_c.resolver_thread import Resolver


@pytest.fixture
def resolver(hub):
    r = Resolver()
    yield r
    r.close()


def _outcome(f, *args):
    """('ok', result) or ('err', type, args): compares a call to socket's."""
    try:
        return ('ok', f(*args))
    except Exception as e:
        return ('err', type(e), e.args)


def test_check_results_match_socket(resolver):
    # check: getaddrinfo/gethostbyname/gethostbyname_ex/getnameinfo as socket's
    r = resolver
    args = ('localhost', 80, socket.AF_INET, socket.SOCK_STREAM)
    assert r.getaddrinfo(*args) == socket.getaddrinfo(*args)
    assert r.gethostbyname('localhost') == '127.0.0.1'
    assert r.gethostbyname_ex('localhost') == socket.gethostbyname_ex('localhost')
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    assert r.getnameinfo(('127.0.0.1', 80), flags) == ('127.0.0.1', '80')


def test_check_bad_argument_type(resolver, stream):
    # check: r.gethostbyname(42) -> TypeError
    with pytest.raises(TypeError):
        resolver.gethostbyname(42)


def test_numeric_forms_match_socket(resolver):
    r = resolver
    assert r.gethostbyname('127.0.0.1') == '127.0.0.1'
    for args in [('127.0.0.1', 80),
                 ('127.0.0.1', 'http', socket.AF_INET),
                 ('127.0.0.1', None, 0, socket.SOCK_DGRAM),
                 ('127.0.0.1', 0, 0, 0, 0, socket.AI_NUMERICHOST)]:
        assert r.getaddrinfo(*args) == socket.getaddrinfo(*args), args


def test_gethostbyaddr_matches_socket(resolver):
    # Whatever /etc/hosts says (even herror), the resolver must agree with socket.
    assert (_outcome(resolver.gethostbyaddr, '127.0.0.1')
            == _outcome(socket.gethostbyaddr, '127.0.0.1'))


def test_check_numeric_host_error_not_printed(hub, resolver, stream):
    # check: with stream, r.getaddrinfo('x y', 80, 0, 0, 0, AI_NUMERICHOST)
    # raises socket.gaierror in < 1 s, and stream.getvalue() == ''.
    # socket.gaierror in hub.NOT_ERROR.
    t0 = time.time()
    with pytest.raises(socket.gaierror) as ei:
        resolver.getaddrinfo('x y', 80, 0, 0, 0, socket.AI_NUMERICHOST)
    assert time.time() - t0 < 1.0
    assert stream.getvalue() == ''
    assert socket.gaierror in hub.NOT_ERROR
    assert socket.herror in hub.NOT_ERROR
    # exceptions propagate unchanged: same type and args as socket's
    with pytest.raises(socket.gaierror) as ej:
        socket.getaddrinfo('x y', 80, 0, 0, 0, socket.AI_NUMERICHOST)
    assert type(ei.value) is type(ej.value)
    assert ei.value.args == ej.value.args


def test_getnameinfo_error_matches_socket(resolver, stream):
    # a bad sockaddr is rejected exactly as by socket
    assert (_outcome(resolver.getnameinfo, ('x y', 80), socket.NI_NUMERICHOST)
            == _outcome(socket.getnameinfo, ('x y', 80), socket.NI_NUMERICHOST))


def test_close_returns_none_and_resolver_keeps_working(resolver):
    assert resolver.close() is None
    # close() does nothing
    assert resolver.gethostbyname('127.0.0.1') == '127.0.0.1'


def test_repr(resolver):
    text = repr(resolver)
    assert re.match(r'^<gevent_c\.resolver_thread\.Resolver at 0x[0-9a-fA-F]+ pool=<.*>>$',
                    text), text
    assert 'ThreadPool' in text


def test_other_greenlets_run_during_lookup(hub, resolver, monkeypatch):
    # "The calling greenlet blocks and other greenlets run." A slow
    # _socket.gethostbyname makes that observable; it must run off the hub's
    # thread.
    calls = []
    real = _socket.gethostbyname

    def slow(name):
        calls.append(threading.get_ident())
        time.sleep(0.1)
        return real(name)

    monkeypatch.setattr(_socket, 'gethostbyname', slow)
    ticks = []

    def ticker():
        for i in range(5):
            H.sleep(0.01)
            ticks.append(i)

    H.spawn_raw(ticker)
    assert resolver.gethostbyname('127.0.0.1') == '127.0.0.1'
    if not calls:
        pytest.skip('the resolver bound _socket.gethostbyname at import; not observable')
    assert calls[0] != threading.get_ident()
    assert ticks == [0, 1, 2, 3, 4]


def test_uses_hub_threadpool(check_py):
    # it uses hub.threadpool.
    out = check_py('''
        import gevent_c.hub as H
        from gevent_c.resolver_thread import Resolver
        hub = H.get_hub()
        assert hub._threadpool is None
        r = Resolver()
        assert r.gethostbyname('localhost') == '127.0.0.1'
        assert hub._threadpool is not None
        assert hub.threadpool.size >= 1, hub.threadpool.size
        assert r.gethostbyname('127.0.0.1') == '127.0.0.1'
        assert len(hub.threadpool) == 0
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_not_error_extended_on_instance_only_once(check_py):
    # at construction it adds gaierror and herror to hub.NOT_ERROR on the
    # instance, unless already there.
    out = check_py('''
        import socket
        import gevent_c.hub as H
        from gevent_c.resolver_thread import Resolver
        hub = H.get_hub()
        before = tuple(hub.NOT_ERROR)
        cls_before = tuple(H.Hub.NOT_ERROR)
        assert socket.gaierror not in before
        Resolver()
        after = tuple(hub.NOT_ERROR)
        assert after[:len(before)] == before, (before, after)
        assert socket.gaierror in after and socket.herror in after, after
        assert tuple(H.Hub.NOT_ERROR) == cls_before, H.Hub.NOT_ERROR
        Resolver(hub=hub)
        Resolver()
        again = tuple(hub.NOT_ERROR)
        assert again.count(socket.gaierror) == 1, again
        assert again.count(socket.herror) == 1, again
        print('ok')
    ''')
    assert out.strip() == 'ok'


def test_explicit_hub_argument(hub):
    r = Resolver(hub=hub)
    assert r.gethostbyname('127.0.0.1') == '127.0.0.1'


def test_concurrent_lookups_from_many_greenlets(check_py):
    # 50 greenlets resolving at once through hub.threadpool (maxsize 10), five
    # rounds. Isolated in a subprocess: this path has hung.
    out = check_py('''
        import faulthandler, socket, time
        faulthandler.dump_traceback_later(12, exit=True)
        import gevent_c.hub as H
        from gevent_c.resolver_thread import Resolver
        resolver = Resolver()
        for rnd in range(5):
            out = []

            def lookup(i):
                out.append((i, resolver.getaddrinfo('127.0.0.1', 1000 + i, socket.AF_INET,
                                                    socket.SOCK_STREAM)))

            for i in range(50):
                H.spawn_raw(lookup, i)
            deadline = time.time() + 5
            while len(out) < 50 and time.time() < deadline:
                H.sleep(0.01)
            assert len(out) == 50, (rnd, len(out))
            for i, res in out:
                assert res == socket.getaddrinfo('127.0.0.1', 1000 + i, socket.AF_INET,
                                                 socket.SOCK_STREAM)
        print('ok')
    ''', timeout=15)
    assert out.strip() == 'ok'


# 2,000 resolver calls leave len(gc.get_objects()) flat within a small
# bound (and the argument's refcount unchanged).
N_LEAK = 2000
OBJ_SLACK = 50


def _count():
    gc.collect()
    gc.collect()
    return len(gc.get_objects())


def test_leak_resolver_calls(resolver):
    host = ''.join(['127.0.', '0.1'])  # a private str object
    flags = socket.AI_NUMERICHOST

    def cycle(n):
        for _ in range(n):
            assert resolver.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM, 0, flags)
            assert resolver.gethostbyname(host) == '127.0.0.1'

    cycle(100)
    H.sleep(0.01)
    n0 = _count()
    rc = sys.getrefcount(host)
    cycle(N_LEAK // 2)
    H.sleep(0.01)
    n1 = _count()
    assert sys.getrefcount(host) == rc
    assert n1 - n0 < OBJ_SLACK, (n0, n1)


def test_leak_resolver_errors(resolver, stream):
    host = ''.join(['x ', 'y'])

    def cycle(n):
        for _ in range(n):
            try:
                resolver.getaddrinfo(host, 80, 0, 0, 0, socket.AI_NUMERICHOST)
            except socket.gaierror:
                pass
            else:
                raise AssertionError('no error')

    cycle(100)
    H.sleep(0.01)
    n0 = _count()
    rc = sys.getrefcount(host)
    cycle(N_LEAK)
    H.sleep(0.01)
    n1 = _count()
    assert sys.getrefcount(host) == rc
    assert n1 - n0 < OBJ_SLACK, (n0, n1)
    assert stream.getvalue() == ''
