#!/usr/bin/env python3
"""Run the test suites of libraries built on gevent on libev and on our loop.

Usage (from the repo root; ``make gevent-compat`` does the first)::

    python3 compat/run_peer_suites.py                # full suites -> docs/compat.md
    python3 compat/run_peer_suites.py --subset       # CI: small subsets, exit 1 on a regression
    python3 compat/run_peer_suites.py --only pyzmq --no-write

The peers: geventhttpclient (its offline tests), gunicorn (the tests of its
gevent worker) and pyzmq (the ``zmq.green`` tests, ``-k Green``).  Each
runs from the sdist of the pinned version below (unpacked into the cache
directory, outside the checkout), against the wheels of the same version
installed in the compat venv, once with gevent's default loop (libev) and
once with ``GEVENT_LOOP=gevent_c.core.loop``, suite by suite, libev first,
so that both loops' times come from the same stretch of machine load.

After the suites (not with ``--subset``), gunicorn itself runs twice per loop,
interleaved: two gevent workers recycling under load (``--max-requests``, a
SIGHUP halfway, then SIGTERM) against ``compat/_http_load.py`` on 127.0.0.1;
the requests answered, the clients' errors and timeouts and the workers'
tracebacks (EBADF: a listener closed under a handler just spawned) go under
the suites' table, libev's beside ours.

A test *regresses* when it passes on libev and does not pass on ours.
``--subset`` runs a bounded part of each suite (a few minutes in all) and
exits 1 on a regression not listed in KNOWN_REGRESSIONS.

Logs and per-test outcomes: build/peer-compat/<suite>-<loop>.{log,json}
(written by the pytest plugin compat/_pytest_outcomes.py).
"""
import argparse
import json
import os
import signal
import socket
import sys
import time
import subprocess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_gevent_tests import (  # noqa: E402  (the shared compat helpers)
    CACHE, DEFAULT_VENV, DOC, ROOT, fetch_sdist, log, run_logged, venv_python,
    write_section)

OUT_DIR = os.path.join(ROOT, 'build', 'peer-compat')
PEERS_DIR = os.path.join(CACHE, 'peers')

# Name and GEVENT_LOOP of each loop; libev is the baseline (gevent's default).
LOOPS = [('libev', None), ('ours', 'gevent_c.core.loop')]

# What the suites need beyond gevent (already in the venv) and the peers.
TEST_DEPS = ['pytest', 'pytest-timeout', 'pytest-asyncio', 'dpkt', 'requests',
             'httplib2', 'httpx', 'brotli', 'h2', 'gunicorn_h1c']


class Suite(object):
    def __init__(self, name, dist, version, args, subset_args, selection, deselected=(),
                 timeout=1200, test_timeout=180):
        self.name = name
        self.dist = dist              # the PyPI name
        self.version = version        # pinned: the sdist's tests match the wheel
        self.args = args              # pytest arguments, relative to the sdist's root
        self.subset_args = subset_args
        self.selection = selection    # the doc's words for args
        self.deselected = deselected  # (pytest arguments that deselect, why)
        self.timeout = timeout        # the whole run, seconds
        self.test_timeout = test_timeout  # one test (pytest-timeout), seconds

    @property
    def src(self):
        return os.path.join(PEERS_DIR, '%s-%s' % (self.dist, self.version))


SUITES = [
    Suite('geventhttpclient', 'geventhttpclient', '2.6.1',
          args=['tests', '-m', 'not network'],
          subset_args=['tests/test_client.py', 'tests/test_keep_alive.py',
                       'tests/test_network_failures.py', 'tests/test_ssl.py',
                       'tests/gevent_only', '-m', 'not network'],
          selection='`tests/`, without the tests marked `network`',
          deselected=[(['tests', '-m', 'network'],
                       'marked `network`: they talk to public servers (httpbingo.org, '
                       'github.com, ...); the machines running this have no internet')]),
    Suite('gunicorn', 'gunicorn', '27.0.1',
          # gunicorn's addopts ask for pytest-cov; -k gevent keeps the tests of
          # the gevent worker: tests/workers/ and the gevent classes of the
          # control-socket (real gunicorn processes) and HTTP/2 tests.
          args=['-o', 'addopts=', 'tests/workers', 'tests/test_control_socket_integration.py',
                'tests/test_http2_alpn.py', 'tests/test_http2_h2c.py', '-k', 'gevent'],
          subset_args=['-o', 'addopts=', 'tests/workers',
                       'tests/test_control_socket_integration.py', '-k', 'gevent'],
          selection='`-k gevent` over `tests/workers/`, `tests/test_control_socket_integration.py`, '
                    '`tests/test_http2_alpn.py`, `tests/test_http2_h2c.py`'),
    Suite('zmq.green', 'pyzmq', '27.3.0',
          args=['tests', '-k', 'Green'],
          # the zmq.green tests of poll, multipart, pub/sub and devices, and
          # test_socket's poll test
          subset_args=['tests/test_poll.py', 'tests/test_multipart.py', 'tests/test_pubsub.py',
                       'tests/test_device.py', 'tests/test_socket.py::TestSocketGreen::test_poll',
                       '-k', 'Green'],
          selection='`tests/`, `-k Green` (the `zmq.green` variants of the test classes)'),
]

# What a reader of a suite's times should know, shown under the table.
SUITE_NOTES = {
    'gunicorn': ("The two control-socket tests start gunicorn with two gevent workers and "
                 "stop it with SIGTERM to its process group; each takes about 1.6 s when "
                 "gunicorn exits at once and about 5.3 s when the test's 5 s wait runs out "
                 "first (one worker has not exited; then SIGKILL), on either loop, at "
                 "random.  Four interleaved runs of those two tests: libev 43.2 s, ours "
                 "38.4 s.  The suite's time ratio moves with that draw."),
}

# Why a suite's tests are slow on ours, shown under the slow-test table.
SLOW_NOTES = {
    'zmq.green': ("A test taking about 11.6 s (or a multiple) on ours is a wait that "
                  "ended on zmq.green's fallback timeout instead of an io event.  0-4 "
                  "tests per run did (on gevent's libuv loop too) until the stale-watcher "
                  "fix: `test_copy` leaves two shadow copies of a socket whose io "
                  "watchers stay started after the socket is closed, and a later "
                  "socket's eventfd given that fd number was never added to epoll (the "
                  "first start of a new io watcher now adds it: docs/design.md, io "
                  "watchers).  After the fix, ten runs of this suite in a row, libev "
                  "then ours each time: 68 passed on both every run, no such wait, "
                  "ours / libev time 0.68-1.22 (median 1.00; 188.7 s against 201.5 s "
                  "in all)."),
}

# Tests that pass on libev and fail on ours today, with why.  --subset does
# not fail on these; it says when one passes again (then remove it).
KNOWN_REGRESSIONS = {}


def ensure_peers(python):
    """Install the pinned peers and their test dependencies into the venv
    (a no-op when present) and make this checkout importable there without
    PYTHONPATH: some tests start processes with a PYTHONPATH of their own
    (gunicorn's control-socket tests), and with GEVENT_LOOP naming our loop
    those must still find gevent_c."""
    want = ['%s==%s' % (s.dist, s.version) for s in SUITES] + TEST_DEPS
    check = ('import importlib.metadata as m, sys\n'
             'missing = []\n'
             'for spec in sys.argv[1:]:\n'
             '    name, _, ver = spec.partition("==")\n'
             '    try:\n'
             '        have = m.version(name)\n'
             '    except m.PackageNotFoundError:\n'
             '        have = None\n'
             '    if have is None or (ver and have != ver):\n'
             '        missing.append(spec)\n'
             'print(" ".join(missing))\n')
    out = subprocess.run([python, '-c', check] + want, stdout=subprocess.PIPE,
                         check=True).stdout.decode().split()
    if out:
        log('installing into the compat venv: %s', ' '.join(out))
        subprocess.run([python, '-m', 'pip', 'install', '-q'] + out, check=True)
    site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                          stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    pth = os.path.join(site, 'gevent_c_checkout.pth')
    try:
        with open(pth) as f:
            current = f.read().strip()
    except FileNotFoundError:
        current = None
    if current != ROOT:
        with open(pth, 'w') as f:
            f.write(ROOT + '\n')



def suite_env(loop_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('GEVENT', 'PYTEST_ADDOPTS', 'PYTHONPATH'))}
    if loop_path:
        env['GEVENT_LOOP'] = loop_path
    # ROOT for gevent_c (the .pth in the venv covers children that reset
    # PYTHONPATH), compat/ for the outcomes plugin.
    env['PYTHONPATH'] = os.pathsep.join([ROOT, os.path.join(ROOT, 'compat')])
    return env


def run_suite(python, suite, label, loop_path, subset):
    """One pytest process for *suite* on one loop; returns its result."""
    base = os.path.join(OUT_DIR, '%s-%s' % (suite.name, label))
    outcomes_path = base + '.json'
    if os.path.exists(outcomes_path):
        os.unlink(outcomes_path)
    pytest_script = os.path.join(os.path.dirname(python), 'pytest')
    # bin/pytest, not python -m pytest: -m would put the sdist's root (its
    # uncompiled package: pyzmq) first on sys.path.
    cmd = [python, pytest_script, '-p', 'no:cacheprovider', '-p', '_pytest_outcomes',
           '-q', '-rfE', '--timeout=%d' % suite.test_timeout] + (
               suite.subset_args if subset else suite.args)
    env = suite_env(loop_path)
    env['PEER_COMPAT_OUTCOMES'] = outcomes_path
    rc, timed_out, elapsed, text = run_logged(
        cmd, env, suite.src, suite.timeout, base + '.log',
        '$ cd %s; GEVENT_LOOP=%s %s\n' % (suite.src, loop_path or '', ' '.join(cmd)))
    try:
        with open(outcomes_path) as f:
            tests = json.load(f)
    except (OSError, ValueError):
        tests = {}
    counts = {k: sum(1 for t in tests.values() if t['outcome'] == k)
              for k in ('passed', 'failed', 'skipped')}
    return {'suite': suite.name, 'label': label, 'rc': rc, 'timed_out': timed_out,
            'elapsed': round(elapsed, 1), 'tests': tests, 'counts': counts,
            'log': os.path.relpath(base + '.log', ROOT)}


# gunicorn's gevent worker recycling under load: not a test of gunicorn's
# suite, a run of gunicorn itself (loopback only), on each loop.
RECYCLE_APP = (
    'def app(environ, start_response):\n'
    "    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '2')])\n"
    "    return [b'ok']\n")
RECYCLE_ARGS = ['-k', 'gevent', '-w', '2', '--max-requests', '2000',
                '--max-requests-jitter', '200', '--graceful-timeout', '10']
RECYCLE_SECONDS, RECYCLE_HUP_AT, RECYCLE_CONNS = 10, 5, 50


def _free_port():
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _wait_listening(port, proc, deadline):
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def run_gunicorn_recycling(python, label, loop_path, n):
    """gunicorn with two gevent workers that recycle (--max-requests, then a
    SIGHUP halfway) under a load generator on 127.0.0.1, then SIGTERM: the
    requests answered, the clients' errors and timeouts, and the worker
    errors in gunicorn's log (EBADF: a listener closed under a handler)."""
    work = os.path.join(OUT_DIR, 'gunicorn-recycle')
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, 'recycle_app.py'), 'w') as f:
        f.write(RECYCLE_APP)
    logpath = os.path.join(OUT_DIR, 'gunicorn-recycle-%s-%d.log' % (label, n))
    port = _free_port()
    cmd = [python, '-m', 'gunicorn'] + RECYCLE_ARGS + [
        '-b', '127.0.0.1:%d' % port, '--chdir', work, 'recycle_app:app']
    with open(logpath, 'wb') as out:
        out.write(('$ GEVENT_LOOP=%s %s\n' % (loop_path or '', ' '.join(cmd))).encode())
        out.flush()
        proc = subprocess.Popen(cmd, env=suite_env(loop_path), cwd=work, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        load = None
        try:
            if not _wait_listening(port, proc, time.time() + 30):
                return {'label': label, 'error': 'gunicorn did not listen (see %s)'
                        % os.path.relpath(logpath, ROOT)}
            load = subprocess.Popen(
                [python, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      '_http_load.py'),
                 str(port), str(RECYCLE_SECONDS), str(RECYCLE_CONNS)],
                env=suite_env(None), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(RECYCLE_HUP_AT)
            proc.send_signal(signal.SIGHUP)
            try:
                lout, lerr = load.communicate(timeout=RECYCLE_SECONDS + 60)
            except subprocess.TimeoutExpired:
                return {'label': label, 'error': 'the load generator did not finish'}
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                pass
        finally:
            for p in (load, proc):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # workers left behind
            except OSError:
                pass
    with open(logpath, errors='replace') as f:
        text = f.read()
    try:
        counts = json.loads(lout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {'label': label, 'error': 'load generator: %s' % lerr.decode()[-300:]}
    counts.update({
        'label': label,
        'ebadf': text.count('[Errno 9] Bad file descriptor'),
        'tracebacks': text.count('Traceback (most recent call last)'),
        'boots': text.count('Booting worker'),
        'log': os.path.relpath(logpath, ROOT)})
    return counts


def recycling_lines(runs):
    """docs/compat.md lines for run_gunicorn_recycling's results."""
    lines = ['### gunicorn recycling under load', '',
             "gunicorn %s's gevent worker, %s, against %d clients on 127.0.0.1 (gevent "
             'on libev, `compat/_http_load.py`: connect, GET, read to the end, close) for '
             '%d s, SIGHUP to the arbiter after %d s, then SIGTERM; two runs per loop, '
             'interleaved.  Worker errors are the tracebacks in gunicorn\'s log; EBADF '
             'among them is a listener closed under a handler the acceptor had just '
             'spawned.' % (next(s.version for s in SUITES if s.name == 'gunicorn'), ' '.join(RECYCLE_ARGS), RECYCLE_CONNS,
                           RECYCLE_SECONDS, RECYCLE_HUP_AT),
             '',
             '| loop | requests answered | client errors | client timeouts | '
             'worker errors (EBADF) | workers booted |',
             '|---|---|---|---|---|---|']
    for label, _ in LOOPS:
        for r in (r for r in runs if r['label'] == label):
            if 'error' in r:
                lines.append('| %s | %s | | | | |' % (label, r['error']))
            else:
                lines.append('| %s | %d | %d | %d | %d (%d) | %d |' % (
                    label, r['ok'], r['errors'], r['timeouts'], r['tracebacks'], r['ebadf'],
                    r['boots']))
    lines.append('')
    return lines


def regressions(base, other):
    """Test ids that pass in *base* and do not pass in *other*."""
    return sorted(t for t, r in base['tests'].items()
                  if r['outcome'] == 'passed'
                  and other['tests'].get(t, {}).get('outcome') != 'passed')


def list_deselected(python, suite):
    """{test id: why} for the suite's documented deselections."""
    out = {}
    for args, why in suite.deselected:
        r = subprocess.run([python, os.path.join(os.path.dirname(python), 'pytest'),
                            '-p', 'no:cacheprovider', '--collect-only', '-q'] + args,
                           cwd=suite.src, env=suite_env(None), stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, check=False)
        for line in r.stdout.decode().splitlines():
            if '::' in line and not line.startswith(' '):
                out[line.strip()] = why
    return out


def versions_line(python):
    code = ('import sys, gevent, greenlet, importlib.metadata as m\n'
            'print("Python %s, gevent %s, greenlet %s, pytest %s" % (sys.version.split()[0], '
            'gevent.__version__, greenlet.__version__, m.version("pytest")))')
    return subprocess.run([python, '-c', code], stdout=subprocess.PIPE,
                          check=False).stdout.decode().strip()


def cell(r):
    c = r['counts']
    s = '%d / %d / %d' % (c['passed'], c['failed'], c['skipped'])
    if r['timed_out']:
        s += ' (killed after %d s)' % r['elapsed']
    elif not r['tests']:
        s += ' (rc=%s, no results)' % r['rc']
    return s


def doc_body(python, suites, results, wall, recycling=None):
    lines = []
    w = lines.append
    w("## Peers' test suites")
    w('')
    w('Generated by `make gevent-compat` (`compat/run_peer_suites.py`); do not edit by hand.')
    w('')
    w('The test suites of libraries built on gevent, from their sdists, against the')
    w('wheels of the same versions, each run once with gevent\'s default loop')
    w('(`libev`) and once with `GEVENT_LOOP=gevent_c.core.loop` (`ours`), one')
    w('pytest process per suite and loop, libev first, suite by suite.  Times are')
    w('the pytest process\'s wall time, on a loaded 2-core machine.')
    w('')
    w('- %s' % versions_line(python))
    w('- wall time: %.0f s' % wall)
    w('')
    w('| suite | version | tests run | libev passed / failed / skipped | libev s | '
      'ours passed / failed / skipped | ours s | ours / libev time | '
      'pass on libev, not on ours |')
    w('|---|---|---|---|---|---|---|---|---|')
    for s in suites:
        a, b = results[(s.name, 'libev')], results[(s.name, 'ours')]
        reg = regressions(a, b)
        w('| %s | %s | %s | %s | %.1f | %s | %.1f | %.2f | %d |' % (
            s.name, s.version, s.selection, cell(a), a['elapsed'], cell(b), b['elapsed'],
            b['elapsed'] / a['elapsed'] if a['elapsed'] else float('nan'), len(reg)))
    w('')
    for s in suites:
        for label, _ in LOOPS:
            ft = results[(s.name, label)].get('first_try')
            if ft:
                w('The %s run on %s was run twice: the first ended with rc=%s%s after %.0f s '
                  '(%d passed), the table shows the second.' % (
                      s.name, label, ft['rc'], ' (timed out)' if ft['timed_out'] else '',
                      ft['elapsed'], ft['counts']['passed']))
                w('')
    for s in suites:
        if s.name in SUITE_NOTES:
            w('%s: %s' % (s.name, SUITE_NOTES[s.name]))
            w('')
    w('Target: every test that passes on libev passes on ours, and each suite takes')
    w("at most 1.2 times libev's time.")
    w('')
    w('### Tests that pass on libev and not on ours')
    w('')
    any_reg = False
    for s in suites:
        a, b = results[(s.name, 'libev')], results[(s.name, 'ours')]
        for t in regressions(a, b):
            any_reg = True
            why = KNOWN_REGRESSIONS.get(s.name, {}).get(t, 'not yet explained')
            w('- %s `%s` (%s on ours): %s' % (
                s.name, t, b['tests'].get(t, {}).get('outcome', 'not run'), why))
    if not any_reg:
        w('None.')
    w('')
    slow = []
    for s in suites:
        a, b = results[(s.name, 'libev')], results[(s.name, 'ours')]
        for t, r in b['tests'].items():
            base = a['tests'].get(t)
            if base and r['duration'] > 5 and r['duration'] > 3 * base['duration']:
                slow.append((s.name, t, base['duration'], r['duration']))
    if slow:
        w('### Tests at least 3 times slower on ours (and over 5 s)')
        w('')
        w('| suite | test | libev s | ours s |')
        w('|---|---|---|---|')
        for name, t, x, y in sorted(slow, key=lambda v: -v[3]):
            w('| %s | `%s` | %.1f | %.1f |' % (name, t, x, y))
        w('')
    # intermittent: said whether or not this run met it
    for name in sorted(SLOW_NOTES):
        if name in {x.name for x in suites}:
            w('%s: %s' % (name, SLOW_NOTES[name]))
            w('')
    w('### Deselected tests')
    w('')
    for s in suites:
        des = list_deselected(python, s)
        if des:
            w('%s (%d), %s:' % (s.name, len(des), sorted(set(des.values()))[0]))
            w('')
            for t in sorted(des):
                w('- `%s`' % t)
            w('')
    if recycling:
        lines.extend(recycling_lines(recycling))
    w('### The CI subset')
    w('')
    w('`make peers-compat-subset` (run by `make gevent-compat-subset`) runs a part of')
    w('each suite on both loops and fails when a test passing on libev does not pass')
    w('on ours, unless it is listed as known in `compat/run_peer_suites.py`:')
    w('')
    for s in suites:
        w('- %s: `%s`' % (s.name, ' '.join(
            "'%s'" % a if ' ' in a else a for a in s.subset_args)))
    return '\n'.join(lines) + '\n'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--venv', default=DEFAULT_VENV)
    p.add_argument('--subset', action='store_true',
                   help='a bounded part of each suite; exit 1 on a new regression; '
                   'does not write docs/compat.md')
    p.add_argument('--only', action='append', metavar='SUITE',
                   help='only this suite (repeatable): ' + ', '.join(s.name for s in SUITES))
    p.add_argument('--no-write', action='store_true', help='do not write docs/compat.md')
    p.add_argument('--no-install', dest='install', action='store_false',
                   help='do not pip-install the peers and test dependencies')
    p.add_argument('--out', default=DOC)
    p.add_argument('--rewrite', action='store_true',
                   help="write docs/compat.md from the last full run's results "
                   '(build/peer-compat/results.json) without running anything')
    args = p.parse_args()

    python = venv_python(os.path.abspath(args.venv))
    if not os.path.exists(python):
        raise SystemExit('no venv at %s (make compat-venv creates it)' % args.venv)
    suites = [s for s in SUITES if not args.only or s.name in args.only or s.dist in args.only]
    if not suites:
        raise SystemExit('no suite matches %s' % args.only)
    if args.rewrite:
        with open(os.path.join(OUT_DIR, 'results.json')) as f:
            saved = json.load(f)
        if 'results' not in saved:   # the first format: results only
            saved = {'results': saved,
                     'wall': sum(v['elapsed'] for v in saved.values())}
        results = {tuple(k.split('/', 1)): v for k, v in saved['results'].items()}
        write_section(args.out, 'peers', doc_body(python, SUITES, results, saved['wall'],
                                                  saved.get('recycling')))
        log('wrote %s from %d saved results', os.path.relpath(args.out, ROOT), len(results))
        return 0
    if args.install:
        ensure_peers(python)
    for s in suites:
        if fetch_sdist(python, s.dist, s.version, s.src) is None:
            raise SystemExit('no sdist for %s %s' % (s.dist, s.version))
    os.makedirs(OUT_DIR, exist_ok=True)
    if args.subset:
        for s in suites:
            s.timeout, s.test_timeout = 150, 40

    results = {}
    start = time.time()
    for s in suites:
        for label, loop_path in LOOPS:
            r = run_suite(python, s, label, loop_path, args.subset)
            if label == 'libev' and (r['timed_out'] or r['rc'] not in (0, 1)):
                # The baseline itself died (libev aborts now and then in
                # zmq.green's tests): run it again, and say so.
                log('%s: libev run ended with rc=%s%s; once more', s.name, r['rc'],
                    ' (timed out)' if r['timed_out'] else '')
                first = r
                r = run_suite(python, s, label, loop_path, args.subset)
                r['first_try'] = {k: first[k] for k in ('rc', 'timed_out', 'elapsed', 'counts')}
            results[(s.name, label)] = r
            log('%-16s %-5s %6.1fs  passed %d, failed %d, skipped %d%s', s.name, label,
                r['elapsed'], r['counts']['passed'], r['counts']['failed'],
                r['counts']['skipped'], '  TIMED OUT' if r['timed_out'] else '')
    recycling = []
    if not args.subset and any(s.name == 'gunicorn' for s in suites):
        for n in range(2):
            for label, loop_path in LOOPS:
                r = run_gunicorn_recycling(python, label, loop_path, n)
                recycling.append(r)
                log('gunicorn recycling %-5s %s', label, r)
    wall = time.time() - start
    log('wall time %.0f s', wall)

    with open(os.path.join(OUT_DIR, 'results-subset.json' if args.subset else 'results.json'),
              'w') as f:
        json.dump({'wall': wall, 'results': {'%s/%s' % k: v for k, v in results.items()},
                   'recycling': recycling}, f, indent=1)

    status = 0
    for s in suites:
        a, b = results[(s.name, 'libev')], results[(s.name, 'ours')]
        if not a['tests']:
            log('%s: no results on libev (see %s)', s.name, a['log'])
            status = 1
        known = KNOWN_REGRESSIONS.get(s.name, {})
        reg = regressions(a, b)
        new = [t for t in reg if t not in known]
        if reg:
            log('%s: pass on libev, not on ours: %s', s.name, ' '.join(reg))
        fixed = [t for t in known if b['tests'].get(t, {}).get('outcome') == 'passed']
        if fixed:
            log('%s: known (intermittent) regressions that passed this run: %s',
                s.name, ' '.join(fixed))
        if new:
            log('%s: NEW regressions: %s', s.name, ' '.join(new))
            status = 1
        ratio = b['elapsed'] / a['elapsed'] if a['elapsed'] else 0
        log('%s: ours / libev time %.2f', s.name, ratio)

    if not args.subset and not args.no_write:
        if len(suites) != len(SUITES):
            log('not writing %s: only part of the suites ran', os.path.relpath(args.out, ROOT))
        else:
            write_section(args.out, 'peers', doc_body(python, suites, results, wall, recycling))
            log('wrote %s', os.path.relpath(args.out, ROOT))
    return status if args.subset else 0


if __name__ == '__main__':
    sys.exit(main())
