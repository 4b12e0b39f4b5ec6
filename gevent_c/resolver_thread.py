"""gevent_c.resolver_thread: the default resolver, running the blocking
``_socket`` functions in the hub's thread pool."""
import _socket
from socket import gaierror, herror

from gevent_c._hub import get_hub

__all__ = ['Resolver']


class Resolver(object):
    """Resolver(hub=None): each method runs the matching ``_socket`` function
    in ``hub.threadpool``; the calling greenlet blocks, others run.  Failed
    lookups (gaierror, herror) are added to the hub's NOT_ERROR so they are
    raised in the caller without being printed."""

    def __init__(self, hub=None):
        if hub is None:
            hub = get_hub()
        self.hub = hub
        self.pool = hub.threadpool
        if gaierror not in hub.NOT_ERROR or herror not in hub.NOT_ERROR:
            hub.NOT_ERROR = tuple(hub.NOT_ERROR) + tuple(
                e for e in (gaierror, herror) if e not in hub.NOT_ERROR)

    def __repr__(self):
        return '<%s.%s at 0x%x pool=%r>' % (
            type(self).__module__, type(self).__name__, id(self), self.pool)

    def close(self):
        pass

    def gethostbyname(self, *args):
        return self.pool.apply(_socket.gethostbyname, args)

    def gethostbyname_ex(self, *args):
        return self.pool.apply(_socket.gethostbyname_ex, args)

    def getaddrinfo(self, *args, **kwargs):
        return self.pool.apply(_socket.getaddrinfo, args, kwargs)

    def gethostbyaddr(self, *args, **kwargs):
        return self.pool.apply(_socket.gethostbyaddr, args, kwargs)

    def getnameinfo(self, *args, **kwargs):
        return self.pool.apply(_socket.getnameinfo, args, kwargs)
