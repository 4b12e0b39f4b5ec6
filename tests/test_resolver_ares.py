"""gevent_c.resolver_ares (docs/semantics.md, 'Resolvers') and its channel, gevent_c._ares.

The resolver is pointed at a dnsmasq started for this module (see
dns_server.py) serving a small zone under .test; nothing here uses the
network's DNS.
"""
import gc
import os
import socket
import sys
import time

import pytest

_ares = pytest.importorskip('gevent_c._ares', reason='gevent_c built without c-ares')

import gevent_c.hub as H  # noqa: E402
from gevent_c import resolver_ares  # noqa: E402
from dns_server import DnsServer, find_dnsmasq, silent_udp_server  # noqa: E402

ZONE = {
    'a.test': ['10.1.2.3', 'fd00::1'],
    'multi.test': ['10.1.2.5', '10.1.2.6'],
    'v6only.test': ['fd00::2'],
}
ZONE.update(('h%d.test' % i, ['10.2.%d.%d' % (i // 250, i % 250 + 1)]) for i in range(1000))


@pytest.fixture(scope='module')
def dns():
    if find_dnsmasq() is None:
        pytest.skip('dnsmasq is not installed (Debian package dnsmasq-base; `make deps` '
                    'installs it)')
    server = DnsServer(ZONE).start()
    yield server
    server.stop()


@pytest.fixture
def resolver(hub, dns):
    r = resolver_ares.Resolver(hub, use_environ=False, servers=[dns.server],
                               timeout=1, tries=3)
    yield r
    r.close()


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        H.sleep(0.005)
    return True


# --- basic lookups --------------------------------------------------------

def test_spec_check_in_subprocess(check_py):
    out = check_py('''
        import socket
        import gevent_c.hub as H
        hub = H.get_hub()
        r = hub.resolver
        assert type(r).__module__ == 'gevent_c.resolver_ares', type(r)
        assert r.gethostbyname('localhost') == '127.0.0.1'
        ais = r.getaddrinfo('localhost', 80, socket.AF_INET, socket.SOCK_STREAM)
        assert ('127.0.0.1', 80) in [ai[4] for ai in ais], ais
        print('ok')
    ''', env={'GEVENT_RESOLVER': 'ares'})
    assert out.strip() == 'ok'


def test_import_error_without_cares(check_py):
    out = check_py('''
        import sys
        sys.modules['gevent_c._ares'] = None   # as if built without c-ares
        try:
            import gevent_c.resolver_ares
        except ImportError:
            print('ImportError')
    ''')
    assert out.strip() == 'ImportError'


# --- lookups against dnsmasq ----------------------------------------------

def test_a_records(resolver):
    assert resolver.gethostbyname('a.test') == '10.1.2.3'
    name, aliases, addrs = resolver.gethostbyname_ex('multi.test')
    assert name == 'multi.test' and isinstance(aliases, list)
    assert sorted(addrs) == ['10.1.2.5', '10.1.2.6']
    assert resolver.getaddrinfo('a.test', 80, socket.AF_INET, socket.SOCK_STREAM) == [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, '', ('10.1.2.3', 80))]
    assert resolver.gethostbyname(b'h7.test') == '10.2.0.8'


def test_aaaa_records(resolver):
    assert resolver.getaddrinfo('a.test', 443, socket.AF_INET6, socket.SOCK_STREAM) == [
        (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, '', ('fd00::1', 443, 0, 0))]
    assert resolver.gethostbyname_ex('v6only.test', socket.AF_INET6)[2] == ['fd00::2']
    assert resolver.gethostbyname('a.test', socket.AF_INET6) == 'fd00::1'


def test_getaddrinfo_shape_like_socket(resolver):
    # For each address, the same rows the system resolver gives that address.
    got = resolver.getaddrinfo('a.test', 80)
    want = socket.getaddrinfo('10.1.2.3', 80) + socket.getaddrinfo('fd00::1', 80)
    assert sorted(got, key=repr) == sorted(want, key=repr)
    assert all(type(row[0]) is socket.AddressFamily for row in got)
    assert resolver.getaddrinfo('a.test', 'http', socket.AF_INET) == \
        socket.getaddrinfo('10.1.2.3', 'http', socket.AF_INET)
    rows = resolver.getaddrinfo('a.test', 80, socket.AF_INET, socket.SOCK_STREAM, 0,
                                socket.AI_CANONNAME)
    assert rows[0][3] == 'a.test'
    rows = resolver.getaddrinfo('multi.test', None, socket.AF_INET, socket.SOCK_DGRAM)
    assert sorted(r[4] for r in rows) == [('10.1.2.5', 0), ('10.1.2.6', 0)]
    assert all(r[3] == '' for r in rows)


def test_nxdomain_is_gaierror(resolver):
    for call in (lambda: resolver.gethostbyname('nx.test'),
                 lambda: resolver.gethostbyname_ex('nx.test'),
                 lambda: resolver.getaddrinfo('nx.test', 80),
                 lambda: resolver.getaddrinfo('nx.test', 80, socket.AF_INET6)):
        with pytest.raises(socket.gaierror) as ei:
            call()
        assert ei.value.errno == socket.EAI_NONAME
        assert ei.value.strerror == 'Name or service not known'
    # The name exists, but has no AAAA record.
    with pytest.raises(socket.gaierror):
        resolver.getaddrinfo('multi.test', 80, socket.AF_INET6)


def test_reverse_lookups(resolver):
    name, _aliases, addrs = resolver.gethostbyaddr('10.1.2.3')
    assert name == 'a.test' and addrs == ['10.1.2.3']
    assert resolver.gethostbyaddr('fd00::2')[0] == 'v6only.test'
    assert resolver.gethostbyaddr('h3.test')[0] == 'h3.test'
    with pytest.raises(socket.herror) as ei:
        resolver.gethostbyaddr('10.9.9.9')
    assert ei.value.args == (1, 'Unknown host')
    assert resolver.getnameinfo(('10.1.2.3', 80), 0) == ('a.test', 'http')
    assert resolver.getnameinfo(('fd00::1', 53, 0, 0), socket.NI_NUMERICSERV) == ('a.test', '53')
    assert resolver.getnameinfo(('10.9.9.9', 80), 0) == ('10.9.9.9', 'http')
    with pytest.raises(socket.gaierror):
        resolver.getnameinfo(('10.9.9.9', 80), socket.NI_NAMEREQD)
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    assert resolver.getnameinfo(('10.1.2.3', 80), flags) == ('10.1.2.3', '80')


def test_bad_arguments(resolver):
    with pytest.raises(TypeError):
        resolver.gethostbyname(42)
    with pytest.raises(TypeError):
        resolver.getaddrinfo(42, 80)
    with pytest.raises(TypeError):
        resolver.getnameinfo('10.1.2.3', 0)
    with pytest.raises(TypeError):
        resolver.getnameinfo(('10.1.2.3', 80), 'x')
    with pytest.raises(socket.gaierror):
        resolver.getnameinfo(('a.test', 80), 0)   # host must be numeric, as in socket
    with pytest.raises(socket.gaierror) as ei:
        resolver.getaddrinfo('a.test', 80, 12345)
    assert ei.value.errno == socket.EAI_FAMILY


def test_timeout_against_silent_server(hub):
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            H.sleep(0.02)

    with silent_udp_server() as silent:
        r = resolver_ares.Resolver(hub, use_environ=False, servers=[silent.server],
                                   timeout=0.2, tries=1)
        g = H.spawn_raw(ticker)
        try:
            t0 = time.monotonic()
            with pytest.raises(socket.gaierror) as ei:
                r.gethostbyname('a.test')
            elapsed = time.monotonic() - t0
            assert 0.15 <= elapsed < 2.0
            assert ei.value.errno == socket.EAI_AGAIN
            assert len(ticks) >= 3          # only this greenlet was blocked
            driver = r._driver
            assert driver.watchers == {} and driver.channel.pending == 0
            assert driver.timer is None or not driver.timer.active
        finally:
            H.kill(g)
            r.close()


def test_1000_concurrent_queries(resolver):
    results = {}

    def lookup(i):
        try:
            results[i] = resolver.gethostbyname('h%d.test' % i)
        except Exception as ex:   # recorded and reported below
            results[i] = ex

    t0 = time.monotonic()
    for i in range(1000):
        H.spawn_raw(lookup, i)
    assert wait_until(lambda: len(results) == 1000, timeout=15), len(results)
    wrong = {i: v for i, v in results.items() if v != ZONE['h%d.test' % i][0]}
    assert not wrong, list(wrong.items())[:5]
    assert time.monotonic() - t0 < 15
    assert resolver.ares.pending == 0
    assert wait_until(lambda: resolver._driver.watchers == {}, timeout=2)


def test_numeric_hosts_equal_socket_and_need_no_dns(hub):
    with silent_udp_server() as silent:
        r = resolver_ares.Resolver(hub, use_environ=False, servers=[silent.server],
                                   timeout=5, tries=1)
        try:
            cases = [
                ('127.0.0.1', 80), ('127.0.0.1', 80, socket.AF_INET, socket.SOCK_STREAM),
                ('10.1.2.3', 'http'), ('10.1.2.3', None, 0, socket.SOCK_DGRAM),
                ('::1', 443), ('fd00::1', 80, socket.AF_INET6, 0, 0, socket.AI_NUMERICHOST),
                ('localhost', 80, socket.AF_INET, socket.SOCK_STREAM), (None, 80),
                ('0.0.0.0', 0, 0, 0, 0, socket.AI_PASSIVE),
            ]
            t0 = time.monotonic()
            for args in cases:
                assert r.getaddrinfo(*args) == socket.getaddrinfo(*args), args
            assert r.gethostbyname('10.1.2.3') == '10.1.2.3'
            assert r.gethostbyname_ex('10.1.2.3') == socket.gethostbyname_ex('10.1.2.3')
            assert r.getnameinfo(('127.0.0.1', 80), socket.NI_NUMERICHOST) == \
                socket.getnameinfo(('127.0.0.1', 80), socket.NI_NUMERICHOST)
            with pytest.raises(socket.gaierror):
                r.getaddrinfo('x y', 80, 0, 0, 0, socket.AI_NUMERICHOST)
            assert time.monotonic() - t0 < 1.0      # no query went to the silent server
            assert r.ares.pending == 0 and r._driver.watchers == {}
        finally:
            r.close()


def test_close(hub, dns):
    r = resolver_ares.Resolver(hub, use_environ=False, servers=[dns.server])
    assert r.gethostbyname('a.test') == '10.1.2.3'
    channel = r.ares
    assert r.close() is None
    assert channel.destroyed and r.ares is None and r.closed
    r.close()   # idempotent
    for call in (lambda: r.gethostbyname('a.test'), lambda: r.gethostbyname_ex('a.test'),
                 lambda: r.getaddrinfo('a.test', 80), lambda: r.gethostbyaddr('10.1.2.3'),
                 lambda: r.getnameinfo(('10.1.2.3', 80), 0)):
        with pytest.raises(ValueError, match='^resolver is closed$'):
            call()


def test_close_with_query_in_flight(hub):
    outcome = []

    def lookup():
        try:
            outcome.append(r.gethostbyname('a.test'))
        except Exception as ex:
            outcome.append(ex)

    with silent_udp_server() as silent:
        r = resolver_ares.Resolver(hub, use_environ=False, servers=[silent.server],
                                   timeout=5, tries=1)
        H.spawn_raw(lookup)
        H.sleep(0.05)
        assert r.ares.pending == 1
        t0 = time.monotonic()
        r.close()
        assert wait_until(lambda: outcome, timeout=2)
        assert time.monotonic() - t0 < 1
        assert isinstance(outcome[0], ValueError) and str(outcome[0]) == 'resolver is closed'


def test_environ_options(hub, dns, monkeypatch):
    monkeypatch.setenv('GEVENTARES_SERVERS', dns.server)
    monkeypatch.setenv('GEVENTARES_TIMEOUT', '0.5')
    monkeypatch.setenv('GEVENTARES_TRIES', '2')
    r = resolver_ares.Resolver(hub, tries=4)
    try:
        assert r.params == {'servers': [dns.server], 'timeout': 0.5, 'tries': 4}
        assert r.gethostbyname('a.test') == '10.1.2.3'    # server from the environment
    finally:
        r.close()
    r = resolver_ares.Resolver(hub, use_environ=False)
    assert r.params == {}
    r.close()
    monkeypatch.setenv('GEVENTARES_TRIES', 'many')
    with pytest.raises(ValueError, match='GEVENTARES_TRIES'):
        resolver_ares.Resolver(hub)


def test_fork_recreates_channel(dns, check_py):
    out = check_py('''
        import os
        import gevent_c.hub as H
        from gevent_c.resolver_ares import Resolver
        hub = H.get_hub()
        r = hub.resolver = Resolver(hub, use_environ=False, servers=[%r])
        assert r.gethostbyname('a.test') == '10.1.2.3'
        parent_channel = r.ares
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                H.reinit()
                assert r.ares is not parent_channel
                assert r.gethostbyname('h5.test') == '10.2.0.6'
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        assert r.ares is parent_channel
        assert r.gethostbyname('multi.test') in ('10.1.2.5', '10.1.2.6')
        print('ok')
    ''' % dns.server)
    assert out.strip() == 'ok'


def test_no_leaks(resolver):
    def batch(n):
        done = []

        def worker(k):
            for j in range(k):
                try:
                    resolver.gethostbyname('h%d.test' % (j % 1000))
                    resolver.getaddrinfo('h%d.test' % (j % 1000), 80, socket.AF_INET)
                except socket.gaierror:
                    pass
                try:
                    resolver.gethostbyname('nx%d.test' % j)
                except socket.gaierror:
                    pass
            done.append(k)

        for _ in range(10):
            H.spawn_raw(worker, n // 30)
        assert wait_until(lambda: len(done) == 10, timeout=15)

    batch(300)
    gc.collect()
    before = len(gc.get_objects())
    batch(2000)
    gc.collect()
    after = len(gc.get_objects())
    assert after - before < 100, (before, after)


# --- the channel itself ---------------------------------------------------

def test_result_type():
    r = _ares.Result(5)
    assert r.value == 5 and r.exception is None and r.successful() and r.get() == 5
    e = _ares.Result(exception=KeyError('k'))
    assert e.value is None and not e.successful()
    with pytest.raises(KeyError):
        e.get()
    assert repr(r) == '<Result value=5>'


def test_channel_argument_checks():
    cb = lambda *a: None  # noqa: E731
    with pytest.raises(TypeError):
        _ares.Channel(None)
    with pytest.raises(TypeError):
        _ares.Channel(cb, bogus=1)
    for kw, exc in [({'timeout': -1}, ValueError), ({'timeout': 'x'}, TypeError),
                    ({'tries': 0}, ValueError), ({'tries': 'x'}, TypeError),
                    ({'udp_port': 70000}, ValueError), ({'ndots': -1}, ValueError),
                    ({'servers': [1]}, TypeError), ({'servers': ['bogus']}, ValueError),
                    ({'servers': 5}, TypeError), ({'flags': 1.5}, TypeError)]:
        with pytest.raises(exc):
            _ares.Channel(cb, **kw)
    ch = _ares.Channel(cb, servers='127.0.0.1:5353,[::1]:53', rotate=True, ndots=1)
    try:
        with pytest.raises(TypeError):
            ch.gethostbyname(None, 'a.test')
        with pytest.raises(TypeError):
            ch.gethostbyname(cb, 5)
        with pytest.raises(ValueError):
            ch.gethostbyname(cb, 'a\0b')
        with pytest.raises(ValueError):
            ch.gethostbyaddr(cb, 'not an ip')
        with pytest.raises(TypeError):
            ch.getnameinfo(cb, 'x', 0)
        with pytest.raises(TypeError):
            ch.getnameinfo(cb, ('1.2.3.4',), 0)
        with pytest.raises(OverflowError):
            ch.getnameinfo(cb, ('1.2.3.4', 70000), 0)
        with pytest.raises(ValueError):
            ch.getnameinfo(cb, ('a.test', 80), 0)
        with pytest.raises(OverflowError):
            ch.getaddrinfo(cb, 'a.test', 70000)
        with pytest.raises(TypeError):
            ch.process_fd('a', -1)
        with pytest.raises(ValueError):
            ch.process_fd(-5, -1)
        with pytest.raises(ValueError):
            ch.timeout(-1)
        with pytest.raises(TypeError):
            ch.timeout('x')
        with pytest.raises(TypeError):
            ch.set_servers([None])
        assert ch.timeout() is None and ch.timeout(2.5) == 2.5
        assert ch.pending == 0
    finally:
        ch.destroy()


def test_channel_numeric_callbacks_are_synchronous():
    out = []
    ch = _ares.Channel(lambda *a: out.append(('sock',) + a))
    ch.gethostbyname(out.append, '10.0.0.1')
    ch.getaddrinfo(out.append, '10.0.0.1', 80)
    ch.getnameinfo(out.append, ('10.0.0.1', 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
    assert [r.value for r in out] == [('10.0.0.1', [], ['10.0.0.1']),
                                      [(socket.AF_INET, 0, 0, '', ('10.0.0.1', 80))],
                                      ('10.0.0.1', '80')]
    # A Waiter is a valid callback (the link protocol).
    w = H.Waiter()
    ch.gethostbyname(w, '10.0.0.2')
    assert w.get() == ('10.0.0.2', [], ['10.0.0.2'])
    # A callback's exception propagates from the call that ran it.
    def boom(result):
        raise KeyError('boom')
    with pytest.raises(KeyError):
        ch.gethostbyname(boom, '10.0.0.3')
    ch.destroy()


def test_channel_destroy_fails_pending_queries_once(dns):
    calls = []
    states = []
    ch = _ares.Channel(lambda *a: states.append(a), servers=[dns.server], timeout=5)
    ch.gethostbyname(calls.append, 'a.test')
    ch.getaddrinfo(calls.append, 'a.test', 80)           # AF_UNSPEC: two DNS queries
    ch.gethostbyaddr(calls.append, '10.1.2.3')
    ch.getnameinfo(calls.append, ('10.1.2.3', 80), 0)
    assert ch.pending == 4 and calls == []
    fds = {fd for fd, r, w in states if r or w}
    ch.destroy()
    assert ch.pending == 0 and len(calls) == 4
    assert all(isinstance(c.exception, (socket.gaierror, socket.herror)) for c in calls)
    assert isinstance(calls[2].exception, socket.herror)
    assert {fd for fd, r, w in states if not r and not w} == fds
    ch.destroy()   # idempotent
    with pytest.raises(ValueError):
        ch.gethostbyname(calls.append, 'a.test')
    with pytest.raises(ValueError):
        ch.process_fd(-1, -1)
    with pytest.raises(ValueError):
        ch.timeout()
    assert len(calls) == 4


def test_channel_sock_state_cb_may_not_reenter(dns):
    ch = None

    def sock_state(fd, readable, writable):
        if readable:
            ch.gethostbyname(lambda r: None, 'h1.test')

    ch = _ares.Channel(sock_state, servers=[dns.server])
    calls = []
    with pytest.raises(RuntimeError, match='sock_state_cb'):
        ch.gethostbyname(calls.append, 'a.test')
    assert ch.pending == 1      # the outer query was still sent
    ch.destroy()
    assert len(calls) == 1 and calls[0].exception is not None


def test_channel_gc_cycle():
    import weakref

    class Holder(object):
        def cb(self, fd, r, w):
            pass

    h = Holder()
    h.channel = _ares.Channel(h.cb)      # Holder -> Channel -> bound method -> Holder
    h.channel.gethostbyname(lambda r: None, '10.0.0.1')
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None


def test_channel_module_constants():
    assert _ares.SOCKET_BAD == -1
    assert _ares.ares_version.count('.') == 2
    assert isinstance(_ares.FLAG_NOSEARCH, int)
    assert 'gevent_c._ares' in sys.modules
    assert os.path.basename(_ares.__file__).startswith('_ares')


def test_unclosed_resolver_is_collected(hub, dns):
    import weakref
    r = resolver_ares.Resolver(hub, use_environ=False, servers=[dns.server])
    assert r.gethostbyname('a.test') == '10.1.2.3'
    channel = r.ares
    ref = weakref.ref(r)
    del r
    gc.collect()
    assert ref() is None
    assert channel.destroyed
