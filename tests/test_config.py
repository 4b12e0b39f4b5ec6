"""Class lists, _import and environment configuration (docs/semantics.md, 'The Hub object')."""
import os
import sys

import pytest

import gevent_c.hub as H


def test_import_dotted_and_lists():
    assert H._import('os.path.join') is os.path.join
    assert H._import(['nope.X', 'os.path.join']) is os.path.join
    assert H._import(len) is len
    assert H._import(['nope.X', len]) is len


@pytest.mark.parametrize('bad', [['nope.X'], []])
def test_import_failures(bad):
    with pytest.raises(ImportError):
        H._import(bad)


def test_import_messages():
    with pytest.raises(ImportError, match='required format'):
        H._import('nodots')
    with pytest.raises(ImportError):
        H._import('os.nosuch')
    with pytest.raises(ImportError, match='empty list'):
        H._import([])


def test_import_only_swallows_import_errors(tmp_path):
    (tmp_path / 'broken_mod_gc.py').write_text('raise ValueError("boom")\n')
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ValueError):
            H._import(['broken_mod_gc.X', 'os.path.join'])
    finally:
        sys.path.remove(str(tmp_path))


def test_import_slash_form(tmp_path):
    (tmp_path / 'mymod_gc.py').write_text('class Thing(object):\n    pass\n')
    assert H._import(str(tmp_path) + '/mymod_gc.Thing').__name__ == 'Thing'
    assert str(tmp_path) not in sys.path


def test_import_slash_form_failure_restores_path(tmp_path):
    with pytest.raises(ImportError):
        H._import(str(tmp_path) + '/nomod_gc.Thing')
    assert str(tmp_path) not in sys.path


def test_list_items_stripped():
    assert H._import([' nope.X', ' os.path.join ']) is os.path.join


def test_class_attributes_are_lists(check_py):
    out = check_py('''
        import gevent_c.hub as H
        print(H.Hub.loop_class)
        print(H.Hub.resolver_class)
        print(H.Hub.threadpool_class, H.Hub.backend, H.Hub.format_context)
    ''')
    lines = out.strip().splitlines()
    assert lines[0] == "['gevent_c.core.loop']"
    assert lines[1] == ("['gevent_c.resolver_thread.Resolver', 'gevent_c.resolver_ares.Resolver', "
                        "'gevent_c.socket.BlockingResolver']")
    assert lines[2] == "['gevent_c.threadpool.ThreadPool'] None pprint.pformat"


def test_late_binding_of_resolver_class(hub):
    import gevent_c.resolver_thread
    assert isinstance(H.Hub.resolver_class, list)
    had = hub._resolver
    hub.resolver  # noqa: B018  (resolves the list on the instance)
    try:
        assert hub.resolver_class is gevent_c.resolver_thread.Resolver
        assert isinstance(H.Hub.resolver_class, list)
    finally:
        if had is None:
            del hub.resolver_class


def test_no_resolver_import_until_used(check_py):
    out = check_py('''
        import sys
        import gevent_c.hub as H
        H.get_hub()
        print('gevent_c.resolver_thread' in sys.modules, 'gevent_c.threadpool' in sys.modules)
    ''')
    assert out.strip() == 'False False'


@pytest.mark.parametrize('env,code,expect', [
    ({'GEVENT_LOOP': 'libuv'}, 'print(H.Hub.loop_class)', "['gevent_c.core.loop']"),
    ({'GEVENT_LOOP': 'nope.loop'},
     'try:\n    H.get_hub()\nexcept ImportError as e:\n    print("ImportError")', 'ImportError'),
    ({'GEVENT_BACKEND': 'bogus'},
     'try:\n    H.get_hub()\nexcept ValueError as e:\n    print("ValueError")', 'ValueError'),
    ({'GEVENT_BACKEND': 'epoll'}, 'print(H.Hub.backend, H.get_hub().loop.backend)',
     "['epoll'] epoll"),
    ({'GEVENT_RESOLVER': 'ares,thread'}, 'print(H.Hub.resolver_class)',
     "['gevent_c.resolver_ares.Resolver', 'gevent_c.resolver_thread.Resolver']"),
    ({'GEVENT_THREADPOOL': 'x.Pool, y.Pool'}, 'print(H.Hub.threadpool_class)',
     "['x.Pool', 'y.Pool']"),
])
def test_env_config(check_py, env, code, expect):
    out = check_py('import gevent_c.hub as H\n' + code, env=env)
    assert out.strip().splitlines()[-1] == expect


def test_format_context_resolved_on_instance(hub):
    import pprint
    assert H.Hub.format_context == 'pprint.pformat'
    assert hub.format_context is pprint.pformat
