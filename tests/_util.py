"""Helpers shared by the gevent_c test suite (importable as ``_util``)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

# tests/: the children run_py starts work here and import _util from here.
# Not the checkout's root, whose gevent_c/ would hide an installed package.
TESTS = os.path.dirname(os.path.abspath(__file__))


# Under tests/reliability/asan.sh (the ASan runtime preloaded): a storm of
# signals crashes CPython itself when faulthandler is enabled, with no
# gevent_c involved (asan.sh and docs/reliability.md F26 have the repro).
UNDER_ASAN = 'libasan' in os.environ.get('LD_PRELOAD', '')


def storm_flags(flag='faulthandler'):
    """Interpreter flags for a signal-storm child: -X faulthandler (or -X
    dev), except under ASan, where the tool itself cannot take it (F26)."""
    return [] if UNDER_ASAN else ['-X', flag]


def storm_env():
    """The environment for a signal-storm child (see storm_flags)."""
    e = _clean_env()
    if UNDER_ASAN:
        e.pop('PYTHONFAULTHANDLER', None)
        e['GEVENT_C_STORM_NO_FAULTHANDLER'] = '1'
    return e


def wait_child(pid, timeout, poll=0.01):
    """os.waitpid(pid) for at most timeout seconds: the child's wait status,
    or None for a child still running then (it is SIGKILLed and reaped)."""
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(poll)


def raises(exc, text, fn, *args):
    """fn(*args) must raise exc with text in its message ('' for any);
    returns the exception.  For the children run_py starts, where there is
    no pytest.raises."""
    try:
        fn(*args)
    except exc as e:
        assert text in str(e), (fn, args, e)
        return e
    raise AssertionError('%r%r raised no %s' % (fn, args, exc.__name__))


def _clean_env(env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith('GEVENT')}
    e['PYTHONPATH'] = TESTS + (os.pathsep + e['PYTHONPATH'] if e.get('PYTHONPATH') else '')
    if env:
        e.update(env)
    return e


def run_py(code, env=None, timeout=15):
    """Run ``code`` (dedented) in a fresh ``sys.executable -c`` interpreter.

    The working directory is tests/ (also on ``PYTHONPATH``, for ``_util``), so
    the child imports the same gevent_c as the suite; ``GEVENT_*`` variables
    are removed from the environment unless given in ``env``. Returns the
    ``subprocess.CompletedProcess`` (text mode, stdout/stderr captured). A hang
    raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds.
    """
    return subprocess.run(
        [sys.executable, '-c', textwrap.dedent(code)],
        cwd=TESTS, env=_clean_env(env), capture_output=True, text=True,
        timeout=timeout)


def check_py(code, env=None, timeout=15):
    """Like run_py, but assert the child exited 0; return its stdout."""
    p = run_py(code, env=env, timeout=timeout)
    assert p.returncode == 0, (
        'child exited %r\n--- stdout ---\n%s\n--- stderr ---\n%s'
        % (p.returncode, p.stdout, p.stderr))
    return p.stdout


#: The time (UTC, RFC 3339) that print_exception writes before the context
#: line, as gevent does.
TIMESTAMP = r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ'


def untimed(text):
    """``text`` (an error report, or a StringIO of them) without the
    timestamps print_exception writes: one before each context line, or on
    a line of its own when there is no context."""
    import re
    text = text if isinstance(text, str) else text.getvalue()
    return re.sub(r'(?m)^' + TIMESTAMP + r'(?: |\n)', '', text)


def last_line(stream):
    """Last non-empty line of a StringIO (or str)."""
    text = stream if isinstance(stream, str) else stream.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ''


def noop(*args):
    """A callback that does nothing."""


def count_objects():
    """Objects the GC tracks, after two collections."""
    import gc
    gc.collect()
    gc.collect()
    return len(gc.get_objects())


def assert_no_leaks(cycle, n, *watched, warm=200, settle=None, slack=50):
    """The measure-twice leak check: run ``cycle(warm)``, then ``cycle(n)``
    (each followed by ``settle()``), and assert that the second run left the
    GC's object count within ``slack`` and every ``watched`` object's
    reference count unchanged."""
    cycle(warm)
    if settle:
        settle()
    n0 = count_objects()
    rcs = [sys.getrefcount(o) for o in watched]
    cycle(n)
    if settle:
        settle()
    n1 = count_objects()
    assert [sys.getrefcount(o) for o in watched] == rcs, (watched, rcs)
    assert n1 - n0 < slack, (n0, n1)


# Every watcher type a loop makes, and a factory for each (fd: a readable
# fd for io; signal watchers use SIGUSR2, which the caller keeps harmless).
WATCHER_KINDS = ['io', 'timer', 'signal', 'idle', 'prepare', 'check', 'fork', 'async_', 'stat']


def watcher_factory(kind, loop, fd):
    """A no-argument callable making a new watcher of ``kind`` on ``loop``."""
    import signal
    import gevent_c.core as core
    special = {'io': lambda: loop.io(fd, core.READ), 'timer': lambda: loop.timer(10),
               'signal': lambda: loop.signal(signal.SIGUSR2),
               'stat': lambda: loop.stat('/tmp', 10.0)}
    return special.get(kind) or getattr(loop, kind)


def compat_python():
    """The compat venv's interpreter (latest gevent, see `make compat-venv`),
    or None if it has not been created or is another Python version than
    the one under test (it imports the gevent_c under test, extensions
    included)."""
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    venv = os.path.join(cache, 'gevent_c', 'compat-venv')
    py = os.path.join(venv, 'bin', 'python')
    if not os.access(py, os.X_OK):
        return None
    try:
        with open(os.path.join(venv, 'pyvenv.cfg')) as f:
            cfg = dict((k.strip(), v.strip()) for k, v in
                       (line.split('=', 1) for line in f if '=' in line))
        version = tuple(int(x) for x in
                        cfg.get('version', cfg.get('version_info', '')).split('.')[:2])
    except (OSError, ValueError):
        return None
    return py if version == sys.version_info[:2] else None


def gevent_c_path():
    """The directory the gevent_c under test is imported from."""
    import gevent_c
    return os.path.dirname(os.path.dirname(os.path.abspath(gevent_c.__file__)))


def gevent_env(env=None):
    """The environment for the compat venv's python: gevent on our loop, the
    gevent_c under test first on sys.path."""
    e = _clean_env({'GEVENT_LOOP': 'gevent_c.core.loop'})
    e['PYTHONPATH'] = gevent_c_path() + os.pathsep + e['PYTHONPATH']
    if env:
        e.update(env)
    return e


def run_gevent(args, env=None, timeout=60):
    """Run the compat venv's python with ``args`` (a list, or a code string
    for ``-c``) with gevent on our loop (GEVENT_LOOP=gevent_c.core.loop) and
    the gevent_c under test first on sys.path.  Returns the CompletedProcess; the
    caller skips when compat_python() is None."""
    if isinstance(args, str):
        args = ['-c', textwrap.dedent(args)]
    e = gevent_env(env)
    return subprocess.run([compat_python()] + list(args), cwd=TESTS, env=e,
                          capture_output=True, text=True, timeout=timeout)
