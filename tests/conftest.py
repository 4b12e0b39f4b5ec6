"""Shared fixtures for the gevent_c test suite.

The suite tests the gevent_c that Python imports (the header line says which):
the checkout after ``pip install -e .``, or an installed wheel when pytest runs
from a directory where the checkout is not importable (README, "Tests").

Fixtures:
  hub     -- ``gevent_c.hub.get_hub()``; instance overrides made by a test
             (handle_error, print_exception, NOT_ERROR, format_context, ...)
             are removed afterwards.
  loop    -- ``hub.loop``.
  stream  -- an ``io.StringIO`` assigned to ``hub.exception_stream``; removed
             afterwards with ``del hub.exception_stream``.
  run_py  -- the ``_util.run_py(code, env=None, timeout=30)`` helper: runs code
             in a fresh interpreter and returns the CompletedProcess.
  check_py -- same, asserting exit status 0 and returning stdout.
"""
import io
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _util  # noqa: E402

# A shell that starts a job in the background without job control (nohup,
# "cmd &" in a script) hands it SIGINT ignored, and an ignored signal stays
# ignored across exec, so the children run_py starts would have no
# KeyboardInterrupt.  The SIGINT tests check Python's ordinary setup.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

try:
    import pytest_timeout  # noqa: F401
    HAVE_TIMEOUT = True
except ImportError:
    HAVE_TIMEOUT = False

DEFAULT_TIMEOUT = 20
_MISSING = object()


def _gevent_c_dir():
    import gevent_c
    return os.path.dirname(os.path.realpath(gevent_c.__file__))


def pytest_report_header(config):
    # The suite tests whichever gevent_c is importable: an editable install
    # (the checkout) or an installed wheel.
    import gevent_c
    return 'gevent_c %s from %s' % (gevent_c.__version__, _gevent_c_dir())


def pytest_configure(config):
    # GEVENT_C_EXPECT_DIR: the package directory the run must test (the
    # packaging tests set it, so a shadowing checkout cannot pass for a wheel).
    expect = os.environ.get('GEVENT_C_EXPECT_DIR')
    if expect and _gevent_c_dir() != os.path.realpath(expect):
        raise pytest.UsageError('GEVENT_C_EXPECT_DIR=%s but gevent_c comes from %s'
                                % (expect, _gevent_c_dir()))
    if not HAVE_TIMEOUT:
        config.addinivalue_line(
            'markers', 'timeout(seconds): per-test timeout (needs pytest-timeout)')


def pytest_collection_modifyitems(config, items):
    # Every test gets a timeout so a blocked loop cannot hang the suite. The
    # thread method is used because a hang inside uv_run may never return to
    # Python code where a SIGALRM-based timeout could fire.
    if not HAVE_TIMEOUT:
        return
    for item in items:
        if item.get_closest_marker('timeout') is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT, method='thread'))


@pytest.fixture
def hub():
    import gevent_c.hub as H
    h = H.get_hub()
    d = getattr(h, '__dict__', None)
    before = dict(d) if d is not None else {}
    saved = {}
    for name in ('NOT_ERROR', 'SYSTEM_ERROR', 'name'):
        try:
            saved[name] = getattr(h, name)
        except AttributeError:
            pass
    yield h
    # Undo instance-level overrides made by the test (handle_error = f, ...).
    d = getattr(h, '__dict__', None)
    if d is not None:
        for k in list(d):
            if k not in before:
                try:
                    delattr(h, k)
                except (AttributeError, TypeError):
                    pass
        for k, v in before.items():
            if d.get(k, _MISSING) is not v:
                try:
                    setattr(h, k, v)
                except (AttributeError, TypeError):
                    pass
    for name, value in saved.items():
        try:
            if getattr(h, name) != value:
                setattr(h, name, value)
        except (AttributeError, TypeError):
            pass


@pytest.fixture
def loop(hub):
    return hub.loop


@pytest.fixture
def stream(hub):
    s = io.StringIO()
    hub.exception_stream = s
    yield s
    del hub.exception_stream


@pytest.fixture
def run_py():
    return _util.run_py


@pytest.fixture
def check_py():
    return _util.check_py


@pytest.fixture
def L():
    """A private (non-default) loop, destroyed afterwards."""
    import gevent_c.core as core
    lp = core.loop(default=False)
    yield lp
    lp.destroy()


@pytest.fixture
def pipe():
    """An os.pipe(), both ends closed afterwards (if still open)."""
    import os
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass
