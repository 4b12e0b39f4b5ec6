"""gevent_c.socket: only what the hub needs, the blocking resolver."""
import _socket

__all__ = ['BlockingResolver']


class BlockingResolver(object):
    """BlockingResolver(hub=None): the ``_socket`` functions themselves (not
    cooperative: they block the whole thread).  ``hub`` is ignored."""

    def __init__(self, hub=None):
        pass

    def close(self):
        pass

    gethostbyname = staticmethod(_socket.gethostbyname)
    gethostbyname_ex = staticmethod(_socket.gethostbyname_ex)
    getaddrinfo = staticmethod(_socket.getaddrinfo)
    gethostbyaddr = staticmethod(_socket.gethostbyaddr)
    getnameinfo = staticmethod(_socket.getnameinfo)
