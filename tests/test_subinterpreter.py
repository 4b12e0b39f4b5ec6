"""gevent_c._hub refuses to load in a subinterpreter, with a clear ImportError.

greenlet keeps process-wide state, and libuv's default loop, the signal
registry and the fork hooks are process-wide, so the module declares that
it does not support multiple interpreters (Py_mod_multiple_interpreters on
3.12+, and a check of its own in every version) instead of misbehaving
there.
"""
import pytest

_testcapi = pytest.importorskip('_testcapi')


def test_import_in_subinterpreter_raises_importerror(tmp_path, check_py):
    out = tmp_path / 'result.txt'
    code = '''
import _testcapi, os
import gevent_c.hub  # loaded in the main interpreter: fine
script = """
try:
    import gevent_c._hub
except ImportError as e:
    result = 'ImportError: %%s' %% e
else:
    result = 'imported'
with open(%r, 'w') as f:
    f.write(result)
"""
rc = _testcapi.run_in_subinterp(script)
print(rc)
gevent_c.hub.sleep(0.001)  # the main interpreter's module still works
''' % (str(out),)
    check_py(code)
    result = out.read_text()
    assert result.startswith('ImportError: '), result
    assert 'subinterpreter' in result, result
