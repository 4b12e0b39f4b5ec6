"""The c-ares resolver: DNS lookups that block only the calling greenlet.

``Resolver`` drives a ``gevent_c._ares.Channel`` from the hub's loop: one io
watcher per socket c-ares asks to watch, and one timer for c-ares' query
timeouts.  No threads are used.  Importing this module raises ImportError
when gevent_c was built without c-ares, so ``GEVENT_RESOLVER=ares,thread``
falls through to the thread resolver.

Differences from the ``socket`` module's (system) resolver, as in gevent:

- names are looked up with c-ares (``/etc/hosts``, then the DNS servers
  of ``/etc/resolv.conf`` or the ``servers`` option), not through NSS;
- ``gethostbyname_ex``/``gethostbyaddr`` alias lists and address order may
  differ;
- ``localhost``-style names, numeric addresses and ``AI_NUMERICHOST``
  lookups are answered by the ``socket`` module's own functions, which
  need no DNS traffic;
- ``getaddrinfo`` rows for one address are built like the system resolver
  builds them (one per socket type for the port), so the shape matches.
"""
import os
import socket as _stdsocket
import weakref

import _socket
from _socket import AF_INET, AF_INET6, AF_UNSPEC
from _socket import AI_CANONNAME, AI_NUMERICHOST, AI_NUMERICSERV
from _socket import NI_NAMEREQD, NI_NUMERICHOST
from _socket import EAI_FAMILY, EAI_NONAME
from _socket import gaierror, herror

from gevent_c._ares import Channel  # ImportError without c-ares: by design
from gevent_c.hub import Waiter, get_hub
from gevent_c._config import settings

__all__ = ['Resolver']

READ = 1
WRITE = 2

# Names the socket module answers without DNS (gevent does the same).
# socket.getaddrinfo: _socket's, with AddressFamily/SocketKind in the rows.
_native_getaddrinfo = _stdsocket.getaddrinfo

_LOCAL_NAMES = frozenset([b'localhost', b'ip6-localhost', b'ip6-loopback',
                          b'', b'<broadcast>'])

# Channel options that may come from GEVENTARES_<NAME> (value converters).
def _to_bool(value):
    v = value.strip().lower()
    if v in ('1', 'true', 'yes', 'on'):
        return True
    if v in ('0', 'false', 'no', 'off', ''):
        return False
    raise ValueError('not a boolean: %r' % (value,))


def _to_servers(value):
    return [s.strip() for s in value.split(',') if s.strip()]


_ENV_CONVERTERS = {
    'timeout': float,
    'tries': int,
    'ndots': int,
    'udp_port': int,
    'tcp_port': int,
    'flags': lambda v: int(v, 0),
    'rotate': _to_bool,
    'servers': _to_servers,
}


def _environ_options():
    opts = {}
    for key, value in os.environ.items():
        if not key.startswith('GEVENTARES_') or not value:
            continue
        name = key[len('GEVENTARES_'):].lower()
        convert = _ENV_CONVERTERS.get(name, str)
        try:
            opts[name] = convert(value)
        except ValueError as ex:
            raise ValueError('%s=%r: %s' % (key, value, ex)) from None
    return opts


def _to_bytes(name):
    if isinstance(name, str):
        return name.encode('idna')
    if isinstance(name, (bytes, bytearray)):
        return bytes(name)
    raise TypeError('Expected str, bytes or bytearray, not %s' % type(name).__name__)


def _ip_family(host):
    """AF_INET/AF_INET6 if host (bytes) is a numeric address, else None."""
    try:
        text = host.decode('ascii')
    except UnicodeDecodeError:
        return None
    for family in (AF_INET, AF_INET6):
        try:
            _socket.inet_pton(family, text.split('%', 1)[0] if family == AF_INET6 else text)
        except (OSError, ValueError):
            continue
        return family
    return None


def _intenum(enum, value):
    try:
        return enum(value)
    except ValueError:
        return value


def _call_on_fork(ref):
    resolver = ref()
    if resolver is not None:
        resolver._on_fork()


class _Driver(object):
    """One Channel and the watchers that drive it.  A fork replaces the
    whole driver, so the old channel's sockets and timer stay its own."""

    __slots__ = ('loop', 'channel', 'watchers', 'timer', 'deadline', '__weakref__')

    def __init__(self, loop, options):
        self.loop = loop
        self.watchers = {}      # fd -> io watcher
        self.timer = None
        self.deadline = None    # loop time the timer fires at
        self.channel = Channel(self._sock_state, **options)

    def _sock_state(self, fd, readable, writable):
        # Called by c-ares (from inside a Channel method, in whatever
        # greenlet called it); must not call the channel.
        events = (READ if readable else 0) | (WRITE if writable else 0)
        watcher = self.watchers.get(fd)
        if watcher is not None:
            if events and watcher.events == events and watcher.active:
                return
            watcher.stop()
            if not events:
                # c-ares closes fd right after this returns.
                del self.watchers[fd]
                watcher.close()
                self.loop.closing_fd(fd)
                return
            watcher.events = events
        elif not events:
            return
        else:
            watcher = self.watchers[fd] = self.loop.io(fd, events)
        watcher.start(self._on_io, fd, pass_events=True)

    def _on_io(self, revents, fd):
        try:
            self.channel.process_fd(fd if revents & READ else -1,
                                    fd if revents & WRITE else -1)
        finally:
            self.arm()

    def _on_timer(self):
        self.deadline = None
        try:
            self.channel.process_fd(-1, -1)
        finally:
            self.arm()

    def arm(self):
        """Make the timer fire when c-ares' next timeout expires (or stop it
        when no query is pending).  Called after every channel call."""
        channel = self.channel
        timeout = None if channel.destroyed else channel.timeout()
        timer = self.timer
        if timeout is None:
            if timer is not None:
                timer.stop()
            self.deadline = None
            return
        deadline = self.loop.now() + timeout
        if timer is not None and timer.active and self.deadline is not None \
                and self.deadline <= deadline:
            return      # already due no later than needed
        if timer is not None:
            timer.close()
        self.timer = timer = self.loop.timer(timeout)
        timer.start(self._on_timer)
        self.deadline = deadline

    def destroy(self):
        try:
            self.channel.destroy()  # callbacks get errors; sockets are released
        finally:
            if self.timer is not None:
                self.timer.close()
                self.timer = None
            for watcher in self.watchers.values():
                watcher.close()
            self.watchers.clear()


class Resolver(object):
    """Resolver(hub=None, use_environ=True, **kwargs)

    A c-ares resolver driven by ``hub``'s loop.  kwargs are channel
    options: ``servers`` (list of ``'ip'``/``'ip:port'`` strings),
    ``timeout`` (seconds per try), ``tries``, ``ndots``, ``udp_port``,
    ``tcp_port``, ``flags``, ``rotate``.  With ``use_environ``, each
    ``GEVENTARES_<NAME>`` environment variable supplies option ``<name>``
    unless it is given here, then gevent's ``GEVENT_RESOLVER_NAMESERVERS``
    (``servers``) and ``GEVENT_RESOLVER_TIMEOUT`` (``timeout``).
    """

    def __init__(self, hub=None, use_environ=True, **kwargs):
        if hub is None:
            hub = get_hub()
        self.hub = hub
        if use_environ:
            for name, value in _environ_options().items():
                kwargs.setdefault(name, value)
            # gevent's generic settings (GEVENT_RESOLVER_NAMESERVERS,
            # GEVENT_RESOLVER_TIMEOUT) after the GEVENTARES_ ones
            if settings.resolver_nameservers is not None:
                kwargs.setdefault('servers', list(settings.resolver_nameservers))
            if settings.resolver_timeout is not None:
                kwargs.setdefault('timeout', settings.resolver_timeout)
        self.params = kwargs
        self._driver = _Driver(hub.loop, kwargs)
        self.pid = os.getpid()
        self.fork_watcher = hub.loop.fork(ref=False)
        # Through a weak reference: the active watcher must not keep an
        # unclosed resolver alive.
        self.fork_watcher.start(_call_on_fork, weakref.ref(self))

    def __repr__(self):
        driver = self._driver
        return '<%s.%s at 0x%x ares=%r>' % (
            type(self).__module__, type(self).__name__, id(self),
            driver.channel if driver is not None else None)

    @property
    def ares(self):
        """The current ``Channel`` (None once closed)."""
        driver = self._driver
        return driver.channel if driver is not None else None

    @property
    def closed(self):
        return self._driver is None

    def _on_fork(self):
        pid = os.getpid()
        if pid == self.pid or self._driver is None:
            return
        old = self._driver
        self._driver = _Driver(self.hub.loop, self.params)
        self.pid = pid
        # Its pending queries fail in the hub and are retried on the new one.
        self.hub.loop.run_callback(old.destroy)

    def __del__(self):
        try:
            self.close()
        except Exception:   # interpreter shutdown, loop gone: nothing to release
            pass

    def close(self):
        """Destroy the channel (through a loop callback if queries are
        pending, so their greenlets are woken from the hub).  Later calls
        raise ``ValueError('resolver is closed')``."""
        driver, self._driver = self._driver, None
        if self.fork_watcher is not None:
            self.fork_watcher.close()
            self.fork_watcher = None
        if driver is None:
            return
        if driver.channel.pending:
            self.hub.loop.run_callback(driver.destroy)
        else:
            driver.destroy()

    # -- the query round trip -------------------------------------------

    def _query(self, method, *args):
        """Run one channel query and wait for its result in this greenlet.
        If the channel is replaced meanwhile (fork), retry on the new one."""
        while True:
            driver = self._driver
            if driver is None:
                raise ValueError('resolver is closed')
            waiter = Waiter(self.hub)
            try:
                getattr(driver.channel, method)(waiter, *args)
            finally:
                driver.arm()
            try:
                return waiter.get()
            except (gaierror, herror):
                if driver is self._driver:
                    raise
                if self._driver is None:
                    raise ValueError('resolver is closed') from None

    # -- the resolver API -----------------------------------------------

    def gethostbyname(self, hostname, family=AF_INET):
        host = _to_bytes(hostname)
        if family == AF_INET and (host in _LOCAL_NAMES or _ip_family(host) is not None):
            return _socket.gethostbyname(host.decode('idna'))
        return self.gethostbyname_ex(hostname, family)[2][0]

    def gethostbyname_ex(self, hostname, family=AF_INET):
        host = _to_bytes(hostname)
        if family == AF_INET and (host in _LOCAL_NAMES or _ip_family(host) is not None):
            return _socket.gethostbyname_ex(host.decode('idna'))
        if family not in (AF_INET, AF_INET6):
            raise gaierror(EAI_FAMILY, 'ai_family not supported')
        result = self._query('gethostbyname', host, family)
        if not result[2]:
            raise gaierror(EAI_NONAME, 'Name or service not known')
        return result

    def getaddrinfo(self, host, port, family=0, socktype=0, proto=0, flags=0):
        if host is not None:
            host_b = _to_bytes(host)
        if host is None or flags & AI_NUMERICHOST or host_b in _LOCAL_NAMES \
                or _ip_family(host_b) is not None:
            return _native_getaddrinfo(host, port, family, socktype, proto, flags)
        if family not in (AF_UNSPEC, AF_INET, AF_INET6):
            raise gaierror(EAI_FAMILY, 'ai_family not supported')
        # The (socktype, proto, port) rows the system resolver would give
        # one address: ask it for a numeric placeholder, which needs no DNS.
        template = _socket.getaddrinfo(
            '::1' if family == AF_INET6 else '127.0.0.1', port,
            family or AF_INET, socktype, proto,
            (flags & AI_NUMERICSERV) | AI_NUMERICHOST)
        kinds = []
        for _f, t, p, _c, sa in template:
            if (t, p, sa[1]) not in kinds:
                kinds.append((_intenum(_stdsocket.SocketKind, t), p, sa[1]))
        rows = self._query('getaddrinfo', host_b, None, family, 0, 0, flags & ~AI_NUMERICSERV)
        addrs = []
        for fam, _t, _p, _c, sa in rows:
            key = (fam, sa[0]) + tuple(sa[2:])
            if key not in addrs:
                addrs.append(key)
        canon = rows[0][3] if (flags & AI_CANONNAME) and rows else ''
        result = []
        for fam, ip, *extra in addrs:
            fam = _intenum(_stdsocket.AddressFamily, fam)
            for t, p, prt in kinds:
                result.append((fam, t, p, canon, (ip, prt) + tuple(extra)))
                canon = ''
        if not result:
            raise gaierror(EAI_NONAME, 'Name or service not known')
        return result

    def gethostbyaddr(self, ip_address):
        host = _to_bytes(ip_address)
        if host in _LOCAL_NAMES or host in (b'127.0.0.1', b'::1'):
            return _socket.gethostbyaddr(host.decode('idna'))
        if _ip_family(host) is None:
            # A name: look its first address up, as the system resolver does.
            host = self.getaddrinfo(host, None, AF_UNSPEC, _socket.SOCK_DGRAM)[0][4][0]
        return self._query('gethostbyaddr', host)

    def getnameinfo(self, sockaddr, flags):
        if not isinstance(flags, int):
            raise TypeError('an integer is required')
        if not isinstance(sockaddr, tuple):
            raise TypeError('getnameinfo() argument 1 must be a tuple')
        # The socket module checks the arguments, parses the (numeric)
        # address and looks the service up, all without DNS.
        numeric = _socket.getnameinfo(sockaddr, (flags & ~NI_NAMEREQD) | NI_NUMERICHOST)
        host = numeric[0]
        if flags & NI_NUMERICHOST or '%' in host or \
                _to_bytes(sockaddr[0]) in _LOCAL_NAMES or host in ('127.0.0.1', '::1'):
            return _socket.getnameinfo(sockaddr, flags)
        addr = (host, sockaddr[1]) + tuple(sockaddr[2:4])
        node, _service = self._query('getnameinfo', addr, flags)
        if node is None:
            raise gaierror(EAI_NONAME, 'Name or service not known')
        return node, numeric[1]
