"""gevent_c: gevent.hub reimplemented in C on libuv.

Use ``import gevent_c.hub as hub`` where you had ``import gevent.hub``.
Importing the package does not create a hub or a loop.
"""
__version__ = '0.1.0'
