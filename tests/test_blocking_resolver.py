"""gevent_c.socket.BlockingResolver (docs/semantics.md, 'Resolvers'). No network DNS."""
import _socket
import socket

import pytest

import gevent_c.hub as H
from gevent_c.socket import BlockingResolver

METHODS = ['gethostbyname', 'gethostbyname_ex', 'getaddrinfo', 'gethostbyaddr',
           'getnameinfo']


def test_check_getaddrinfo_and_close(hub):
    # check: BlockingResolver().getaddrinfo('localhost', 80, AF_INET, SOCK_STREAM)
    # == socket.getaddrinfo(...); BlockingResolver(hub=H.get_hub()).close() is None
    args = ('localhost', 80, socket.AF_INET, socket.SOCK_STREAM)
    assert BlockingResolver().getaddrinfo(*args) == socket.getaddrinfo(*args)
    assert BlockingResolver(hub=H.get_hub()).close() is None


@pytest.mark.parametrize('name', METHODS)
def test_methods_are_the_socket_functions(name):
    # the methods are the _socket functions themselves.
    r = BlockingResolver()
    assert getattr(r, name) is getattr(_socket, name)
    assert getattr(BlockingResolver, name) is getattr(_socket, name)


def test_results_and_errors_match_socket():
    r = BlockingResolver()
    assert r.gethostbyname('localhost') == socket.gethostbyname('localhost')
    assert r.gethostbyname('127.0.0.1') == '127.0.0.1'
    assert r.gethostbyname_ex('localhost') == socket.gethostbyname_ex('localhost')
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    assert r.getnameinfo(('127.0.0.1', 80), flags) == ('127.0.0.1', '80')
    with pytest.raises(socket.gaierror):
        r.getaddrinfo('x y', 80, 0, 0, 0, socket.AI_NUMERICHOST)
    with pytest.raises(TypeError):
        r.gethostbyname(42)


def test_not_cooperative(hub):
    # The calls block the thread without switching: a greenlet scheduled
    # before the call has not run when it returns.
    ran = []
    H.spawn_raw(ran.append, 1)
    r = BlockingResolver(hub=hub)
    assert r.gethostbyname('127.0.0.1') == '127.0.0.1'
    assert r.getaddrinfo('127.0.0.1', 80, socket.AF_INET, socket.SOCK_STREAM)
    assert ran == []
    H.sleep(0)
    assert ran == [1]


def test_hub_argument_ignored(check_py):
    # "hub is accepted and ignored": using the resolver creates no hub and
    # does not touch NOT_ERROR (1.0.1's __init__ does nothing).
    out = check_py('''
        import socket
        import gevent_c.hub as H
        from gevent_c.socket import BlockingResolver
        r = BlockingResolver()
        assert r.gethostbyname('127.0.0.1') == '127.0.0.1'
        assert r.close() is None
        assert H._get_hub() is None
        BlockingResolver(hub=object()).close()
        hub = H.get_hub()
        BlockingResolver(hub=hub)
        assert socket.gaierror not in hub.NOT_ERROR
        print('ok')
    ''')
    assert out.strip() == 'ok'
