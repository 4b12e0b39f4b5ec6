"""Class lists, environment configuration and ``_import`` (gevent 1.0 style).

The hub's ``loop_class``, ``resolver_class`` and ``threadpool_class`` are
lists of import strings; each resolves to its first importable entry.
Environment variables are read once, when the hub module is first imported.
"""
import os
import sys

_resolvers = {
    'ares': 'gevent_c.resolver_ares.Resolver',
    'thread': 'gevent_c.resolver_thread.Resolver',
    'block': 'gevent_c.socket.BlockingResolver',
}
_loops = {
    'libuv': 'gevent_c.core.loop',
    'libuv-cffi': 'gevent_c.core.loop',
}

DEFAULT_LOOP = ['gevent_c.core.loop']
DEFAULT_RESOLVER = [
    'gevent_c.resolver_thread.Resolver',
    'gevent_c.resolver_ares.Resolver',
    'gevent_c.socket.BlockingResolver',
]
DEFAULT_THREADPOOL = ['gevent_c.threadpool.ThreadPool']


def _split(value):
    return [item.strip() for item in value.split(',')]


def config(default, envvar, aliases=None):
    """The value of ``envvar`` split on commas (aliases applied), else default."""
    value = os.environ.get(envvar)
    if not value:
        return default
    items = _split(value)
    if aliases:
        items = [aliases.get(item, item) for item in items]
    return items


def resolver_config(default, envvar):
    return config(default, envvar, _resolvers)


def _import(path):
    """Resolve an import path, a list of them, or return a non-string as is.

    ``'pkg.module.Class'`` imports ``pkg.module`` and fetches ``Class``;
    ``'/dir/module.Class'`` imports from ``/dir`` (added to ``sys.path``
    for this import only).  A list returns its first importable entry; the
    last entry's ImportError propagates.
    """
    if isinstance(path, list):
        if not path:
            raise ImportError('Cannot import from empty list: %r' % (path,))
        for item in path[:-1]:
            try:
                return _import(item)
            except ImportError:
                pass
        return _import(path[-1])
    if not isinstance(path, str):
        return path
    path = path.strip()
    if '.' not in path:
        raise ImportError("Cannot import %r (required format: [path/][package.]module.class)" % path)
    if '/' in path:
        directory, path = path.rsplit('/', 1)
        sys.path.insert(0, directory)
        try:
            return _import(path)
        finally:
            try:
                sys.path.remove(directory)
            except ValueError:
                pass
    module, item = path.rsplit('.', 1)
    first, _, rest = item.partition('.')
    x = __import__(module, fromlist=[first])
    result = x
    for attr in item.split('.'):
        try:
            result = getattr(result, attr)
        except AttributeError:
            raise ImportError('Cannot import %r from %r' % (attr, x))
    return result
