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


class _Name(str):
    """A name from the environment that is no alias and no import path:
    _import's error lists the aliases it could have been."""
    choices = ()


def _name(item, aliases):
    if item in aliases:
        return aliases[item]
    if '.' in item:
        return item
    name = _Name(item)
    name.choices = tuple(aliases)
    return name


def config(default, envvar, aliases=None):
    """The value of ``envvar`` split on commas (aliases applied), else default."""
    value = os.environ.get(envvar)
    if not value:
        return default
    items = _split(value)
    if aliases:
        items = [_name(item, aliases) for item in items]
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
    choices = getattr(path, 'choices', ())
    path = path.strip()
    if '.' not in path:
        raise ImportError("Cannot import %r (required format: [path/][package.]module.class%s)"
                          % (str(path), '; or one of: ' + ', '.join(choices) if choices else ''))
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


# ---- gevent's runtime settings (the names of gevent.config) ---------------

def _env_bool(value):
    v = value.strip().lower()
    if v in ('1', 'true', 'on', 'yes'):
        return True
    if v in ('0', 'false', 'off', 'no'):
        return False
    raise ValueError('not a boolean (1/true/on/yes or 0/false/off/no): %r' % (value,))


def _env_float(value):
    return float(value)


def _positive(value):
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError('must be a number, not %r' % (value,))
    if not value > 0:            # NaN too: no duration
        raise ValueError('must be positive, not %r' % (value,))
    return float(value)


def _positive_or_never(value):
    # -1: no timeout (as gevent documents for the pool's idle timeout)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == -1:
        return -1.0
    return _positive(value)


def _bool(value):
    if not isinstance(value, bool):
        raise TypeError('must be True or False, not %r' % (value,))
    return value


def _servers(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(',')
    value = [s.strip() for s in value]
    if not all(isinstance(s, str) and s for s in value):
        raise ValueError('nameservers must be non-empty strings: %r' % (value,))
    return value


class _Setting(object):
    __slots__ = ('name', 'envvar', 'default', 'from_env', 'validate')

    def __init__(self, name, envvar, default, from_env, validate):
        self.name, self.envvar, self.default = name, envvar, default
        self.from_env, self.validate = from_env, validate


class Settings(object):
    """gevent's runtime settings that gevent_c honours, under gevent.config's
    names.  Each is read from its environment variable on first use, as
    gevent's config does, and can be assigned (the value is validated).

    ========================== ======================================= =========
    setting                    environment variable                    default
    ========================== ======================================= =========
    monitor_thread             GEVENT_MONITOR_THREAD_ENABLE            False
    max_blocking_time          GEVENT_MAX_BLOCKING_TIME                0.1
    print_blocking_reports     GEVENT_MONITOR_PRINT_BLOCKING_REPORTS   True
    threadpool_idle_task_timeout GEVENT_THREADPOOL_IDLE_TASK_TIMEOUT  5.0
    resolver_nameservers       GEVENT_RESOLVER_NAMESERVERS             None
    resolver_timeout           GEVENT_RESOLVER_TIMEOUT                 None
    ========================== ======================================= =========
    """

    _table = {s.name: s for s in [
        _Setting('monitor_thread', 'GEVENT_MONITOR_THREAD_ENABLE', False, _env_bool, _bool),
        _Setting('max_blocking_time', 'GEVENT_MAX_BLOCKING_TIME', 0.1, _env_float, _positive),
        _Setting('print_blocking_reports', 'GEVENT_MONITOR_PRINT_BLOCKING_REPORTS', True,
                 _env_bool, _bool),
        _Setting('threadpool_idle_task_timeout', 'GEVENT_THREADPOOL_IDLE_TASK_TIMEOUT', 5.0,
                 _env_float, _positive_or_never),
        _Setting('resolver_nameservers', 'GEVENT_RESOLVER_NAMESERVERS', None, _servers,
                 _servers),
        _Setting('resolver_timeout', 'GEVENT_RESOLVER_TIMEOUT', None, _env_float,
                 lambda v: None if v is None else _positive(v)),
    ]}

    def __init__(self):
        object.__setattr__(self, '_values', {})

    def __getattr__(self, name):
        try:
            s = self._table[name]
        except KeyError:
            raise AttributeError('no setting %r; settings: %s' % (
                name, ', '.join(sorted(self._table)))) from None
        values = self._values
        if name not in values:
            raw = os.environ.get(s.envvar)
            if raw is None or not raw.strip():
                values[name] = s.default
            else:
                try:
                    values[name] = s.validate(s.from_env(raw))
                except (TypeError, ValueError) as ex:
                    raise ValueError('%s=%r: %s' % (s.envvar, raw, ex)) from None
        return values[name]

    def __setattr__(self, name, value):
        s = self._table.get(name)
        if s is None:
            raise AttributeError('no setting %r; settings: %s' % (
                name, ', '.join(sorted(self._table))))
        try:
            self._values[name] = s.validate(value)
        except (TypeError, ValueError) as ex:
            raise type(ex)('%s: %s' % (name, ex)) from None

    def __delattr__(self, name):
        # forget an assigned value: the next read consults the environment
        if name not in self._table:
            raise AttributeError('no setting %r' % (name,))
        self._values.pop(name, None)

    def __dir__(self):
        return sorted(self._table)

    def is_explicit(self, name):
        """True when setting ``name`` was assigned or its variable is set
        (not empty), rather than left at its default."""
        s = self._table[name]
        if name in self._values and not (
                self._values[name] == s.default and not os.environ.get(s.envvar, '').strip()):
            return True
        return bool(os.environ.get(s.envvar, '').strip())


settings = Settings()
