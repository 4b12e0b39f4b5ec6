#!/usr/bin/env python3
"""Run gevent's own test suite (``gevent.tests``) on several loops.

Usage (from the repo root; ``make gevent-compat`` does the first)::

    python3 compat/run_gevent_tests.py                  # full suite, ours + libuv -> docs/compat.md
    python3 compat/run_gevent_tests.py --subset         # CI subset, ours only, exit 1 on a failure
    python3 compat/run_gevent_tests.py --only 'test__core*' --no-write
    python3 compat/run_gevent_tests.py --loop ours=gevent_c.core.loop --loop libev=libev-cext

Each test *file* runs in its own process (gevent's runner would combine
several into one ``unittest`` process; we want per-file results), with the
environment, per-file timeouts and command lines that gevent's own runner
computes for that loop (``compat/_discover.py`` asks it).  The same file
list is run under every loop.  Processes run ``-j`` at a time; files gevent
marks RUN_ALONE run afterwards, one at a time.

Logs: build/gevent-compat/<label>/<file>.log; raw results:
build/gevent-compat/results.json.
"""
import argparse
import concurrent.futures
import fnmatch
import json
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Outside the checkout: gevent.testing finds the gevent source tree (for the
# examples/ directory) by climbing from its own file to a setup.py, and
# inside this checkout it would stop at ours.
CACHE = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
                     'gevent_c')
DEFAULT_VENV = os.path.join(CACHE, 'compat-venv')
OUT_DIR = os.path.join(ROOT, 'build', 'gevent-compat')
DOC = os.path.join(ROOT, 'docs', 'compat.md')

# The last loop is the baseline the others are compared with.
DEFAULT_LOOPS = [('ours', 'gevent_c.core.loop'),
                 ('ours+py', 'gevent_c.gevent_loop.loop'),
                 ('libuv', 'libuv')]

# The CI subset: core loop/watcher, hub, sleep, timeout and socket tests.
# Chosen to finish in a few minutes on 2 cores; no network, no dns.
SUBSET = [
    'test__core', 'test__core_async', 'test__core_callback',
    'test__core_loop_run', 'test__core_stat', 'test__core_timer',
    'test__core_watcher', 'test__loop_callback',
    'test__hub', 'test__hub_join', 'test__hub_join_timeout',
    'test__destroy', 'test__destroy_default_loop', 'test__nondefaultloop',
    'test__sleep0', 'test__timeout', 'test__api_timeout', 'test__api',
    'test__event', 'test__greenlet', 'test__select', 'test__selectors',
    'test__fileobject',
    'test__socket', 'test__socket_close', 'test__socket_errors',
    'test__socket_ex', 'test__socket_send_memoryview',
    'test__socket_timeout', 'test__socketpair',
]

# Subset files that fail on gevent_c.core.loop today (see docs/compat.md for
# why); --subset fails only when another file fails.  Shrink as C catches up.
SUBSET_KNOWN_FAILING = frozenset([
    'test__core_timer',   # test_resolution: a timer firing early; see DIFFERENCES
])

# Files that fail on our loop by design: they assert a behaviour of gevent's
# libev/libuv loops that gevent_c decides
# otherwise (docs/semantics.md, 'Deliberate differences').  Shown in docs/compat.md.
DIFFERENCES = {
    'test__environ': (
        "runs a child with `GEVENT_BACKEND=select`, so gevent's hub creates its "
        "loop with `flags='select'`, and asserts `loop.backend` is 'select' when "
        "`supported_backends()` lists it, else 'default' (what gevent's libuv loop "
        "reports while ignoring the flag).  libuv has no select backend; gevent_c "
        "makes `loop('select')` raise `ValueError('Unsupported backend: select')` "
        "(the project forbids silent no-ops) and `backend` name the real poller, "
        "'epoll'.  The Python bridge `gevent_c.gevent_loop.loop` drops backend "
        "names libuv lacks, as gevent's libuv loop does, and still reports 'epoll'."),
    'test__core_timer': (
        "`test_resolution` starts a 1 ms timer and an io watcher that is ready at "
        "once, calls `run(once=True)` 150 times and needs the timer to fire inside "
        "one of those passes.  On libev and libuv it can, because `timer.start()` "
        "counts from the loop's cached time (stale by the Python work since the "
        "last poll, and truncated to whole ms under libuv): the timer fires before "
        "1 ms has passed.  gevent_c's timers never fire before `after` "
        "seconds of wall time since `start()`; a pass ended at once by the ready io "
        "lasts microseconds, so ours fires the timer in a later pass."),
}

# Files that fail on every loop here, for reasons outside the loop.
EVERYWHERE = {
    'test__getaddrinfo_import': (
        "resolves a real host name at import time; this machine has no DNS "
        "(network resources are off)."),
    'test__subprocess': (
        "`test_run_with_shell_timeout_and_capture_output`: after the timeout "
        "gevent's `subprocess.run()` kills the shell and then calls "
        "`communicate()` (CPython calls `wait()` on POSIX); Debian's /bin/sh "
        "(dash) runs `sleep 3` as a child that keeps the pipes open, so it takes "
        "3 s instead of 0.1 s."),
}

# Files whose assertions are about libev/libuv (or gevent's CFFI backend)
# internals, with what ours does; shown in docs/compat.md.
INTERNALS = {
    'test__close_backend_fd': (
        "closes the backend fd of each libev backend; skipped on libuv and ours."),
    'test__fileobject': (
        "gevent's tests recognise libuv by `'libuv' in type(loop).__module__`; "
        "ours is not, so libev's expectations apply: io watchers on regular files "
        "(epoll refuses them with EPERM) report them always ready.  Ours does that "
        "too; gevent's libuv loop raises EPERM and the tests skip those cases."),
    'test__core_stat': (
        "expects `interval` to echo the -1 passed in until `start()`, and to be a "
        "real period afterwards; ours keeps any non-negative request as given "
        "(docs/semantics.md, 'stat') and reports the period in use (0.1074891) for a negative one."),
}


# (note in the per-file table, section title, section intro, files -> why)
NOTE_SECTIONS = [
    ('differs by design (below)', 'Files that differ by design',
     "These fail on ours because they assert a behaviour of gevent's own loops\n"
     "that gevent_c decides otherwise on purpose; each is a deliberate difference.",
     DIFFERENCES),
    ('fails on every loop (below)', 'Files that fail on every loop', '', EVERYWHERE),
    ('loop internals (below)', 'Files that look at loop internals',
     "These check something specific to gevent's libev or CFFI libuv loops\n"
     'rather than the loop interface (`gevent._interfaces.ILoop`).',
     INTERNALS),
]


def log(msg, *args):
    sys.stderr.write((msg % args if args else msg) + '\n')
    sys.stderr.flush()


def safe_member(m):
    """What tarfile's 'data' filter allows, for Pythons without it: a
    regular file, directory or link, inside the extraction directory."""
    if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
        return False
    paths = [m.name]
    if m.issym():       # relative to the link's own directory
        paths.append(posixpath.join(posixpath.dirname(m.name), m.linkname))
    elif m.islnk():     # relative to the archive's root
        paths.append(m.linkname)
    for path in paths:
        norm = posixpath.normpath(path)
        if posixpath.isabs(path) or norm == '..' or norm.startswith('../'):
            return False
    return True


def fetch_sdist(python, dist, version, dest, keep=lambda name: True):
    """Unpack the sdist of *dist* == *version* from PyPI into *dest* (its
    top directory becomes *dest*), once; members whose path below the top
    directory fails *keep* are left out.  Returns *dest*, or None (logged)
    when the download fails."""
    if os.path.isdir(dest):
        return dest
    tmp = tempfile.mkdtemp(prefix='%s-sdist-' % dist)
    try:
        r = subprocess.run([python, '-m', 'pip', 'download', '-q', '--no-deps',
                            '--no-binary', ':all:', '%s==%s' % (dist, version), '-d', tmp],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        tars = [f for f in os.listdir(tmp) if f.endswith('.tar.gz')]
        if r.returncode or not tars:
            log('could not download the %s %s sdist: %s', dist, version,
                r.stdout.decode(errors='replace').strip()[-300:])
            return None
        with tarfile.open(os.path.join(tmp, tars[0])) as tf:
            tops = {m.name.split('/', 1)[0] for m in tf.getmembers()}
            if len(tops) != 1:
                log('unexpected layout of the %s sdist: %s', dist, sorted(tops))
                return None
            top = tops.pop()
            members = [m for m in tf.getmembers()
                       if m.name == top or keep(m.name[len(top) + 1:])]
            if hasattr(tarfile, 'data_filter'):
                tf.extractall(tmp, members=members, filter='data')
            else:   # before 3.11.4 (Debian 12's python3 is 3.11.2): check by hand
                bad = [m.name for m in members if not safe_member(m)]
                if bad:
                    log('refusing the %s sdist: unsafe members %s', dist, bad[:5])
                    return None
                tf.extractall(tmp, members=members)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.move(os.path.join(tmp, top), dest)
        log('%s %s sdist unpacked into %s', dist, version, dest)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_examples(python):
    """The root of a gevent source tree holding ``examples/`` and ``setup.py``,
    or None.  The wheel lacks the examples that ``test__example_*`` run (an
    echo server, a port forwarder, UDP, WSGI servers), so they come from the
    sdist of the installed version, unpacked once into the cache."""
    ver = subprocess.run([python, '-c', 'import gevent; print(gevent.__version__)'],
                         stdout=subprocess.PIPE, check=False).stdout.decode().strip()
    if not ver:
        return None
    root = os.path.join(CACHE, 'gevent-%s-src' % ver)
    if os.path.isdir(os.path.join(root, 'examples')):
        return root
    return fetch_sdist(python, 'gevent', ver, root,
                       keep=lambda n: n.startswith('examples/') or n == 'setup.py')


def venv_python(venv):
    return os.path.join(venv, 'bin', 'python')


def discover(python, loop_path, base_env):
    env = dict(base_env)
    env['GEVENT_LOOP'] = loop_path
    out = subprocess.run(
        [python, os.path.join(ROOT, 'compat', '_discover.py')],
        env=env, cwd='/', stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=300, check=False)
    if out.returncode != 0:
        raise SystemExit('discovery failed for GEVENT_LOOP=%s:\n%s' % (
            loop_path, out.stderr.decode('utf-8', 'replace')[-4000:]))
    return json.loads(out.stdout)


def test_name(cmd):
    """gevent.tests.test__x (from -mgevent.tests.test__x) or the file name."""
    last = [c for c in cmd if c and c != '-u'][-1]
    if last.startswith('-m'):
        last = last[2:]
    name = last.rsplit('.', 1)[-1] if last.startswith('gevent.tests.') else last
    name = os.path.basename(name)
    if name.endswith('.py'):
        name = name[:-3]
    return name


_RAN = re.compile(r'^Ran (\d+) tests? in ([\d.]+)s', re.M)
_STATUS = re.compile(r'^(OK|FAILED)(?: \(([^)]*)\))?\s*$', re.M)


def parse_unittest(text):
    """Counts from the last unittest summary in *text*, or None."""
    ran = list(_RAN.finditer(text))
    if not ran:
        return None
    m = ran[-1]
    res = {'ran': int(m.group(1)), 'failures': 0, 'errors': 0,
           'skipped': 0, 'expected failures': 0, 'unexpected successes': 0}
    st = None
    for st in _STATUS.finditer(text, m.end()):
        break
    if st is not None:
        res['status'] = st.group(1)
        for part in (st.group(2) or '').split(','):
            if '=' in part:
                k, v = part.split('=', 1)
                res[k.strip()] = int(v)
    res['failed'] = res['failures'] + res['errors'] + res['unexpected successes']
    res['passed'] = res['ran'] - res['failed'] - res['skipped'] - res['expected failures']
    return res


class Job(object):
    def __init__(self, label, loop_path, name, entry, disc):
        self.label = label
        self.loop_path = loop_path
        self.name = name
        self.cmd = entry['cmd']
        self.timeout = entry.get('timeout') or 100
        self.setenv = entry.get('setenv') or {}
        self.disc = disc
        self.result = None


def run_logged(cmd, env, cwd, timeout, logpath, header=''):
    """Run *cmd* in its own session with stdout+stderr into *logpath*
    (after *header*); kill the whole session after *timeout* seconds and
    once it exits (stragglers hold the pipe).  Returns (rc, timed_out,
    elapsed seconds, the log's text)."""
    start = time.time()
    # The child's stdout/stderr is a pipe, as under gevent's own runner:
    # some tests watch fd 1 with an io watcher, which epoll refuses for a
    # regular file.
    with open(logpath, 'wb') as out:
        out.write(header.encode())
        out.flush()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

        def pump():
            for chunk in iter(lambda: proc.stdout.read1(65536), b''):
                out.write(chunk)
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            rc = proc.wait()
        # kill stragglers the test left in its session (they hold the pipe)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        reader.join(10)
        proc.stdout.close()
        if timed_out:
            out.write(b'\n[compat runner: killed after %d s timeout]\n' % timeout)
    elapsed = time.time() - start
    with open(logpath, 'rb') as f:
        text = f.read().decode('utf-8', 'replace')
    return rc, timed_out, elapsed, text


def run_job(job, args, logdir):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith('GEVENT'):
            del env[k]
    env.update(job.disc['env'])
    env.update(job.setenv)
    env['GEVENT_LOOP'] = job.loop_path
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p and p != ROOT] + [job.disc['package_dir']])
    env['DO_NOT_SETPGRP'] = '1'
    timeout = min(job.timeout, args.timeout) if args.timeout else job.timeout
    logpath = os.path.join(logdir, job.label, job.name + '.log')
    # the example tests find examples/ from the working directory
    cwd = job.disc['package_dir']
    if job.name.startswith('test__example') and args.examples:
        cwd = args.examples
    rc, timed_out, elapsed, text = run_logged(
        job.cmd, env, cwd, timeout, logpath,
        '$ GEVENT_LOOP=%s %s\n' % (job.loop_path, ' '.join(job.cmd)))
    counts = parse_unittest(text)
    # Python >= 3.12.1's unittest exits 5 when every test was skipped.
    ok = (rc == 0 or (rc == 5 and sys.version_info[:3] >= (3, 12, 1))) and not timed_out
    if counts is not None and counts['failed']:
        ok = False
    job.result = {
        'label': job.label, 'name': job.name, 'rc': rc, 'ok': ok,
        'timed_out': timed_out, 'elapsed': round(elapsed, 1),
        'counts': counts, 'log': os.path.relpath(logpath, ROOT),
    }
    return job


def select(names, patterns):
    if not patterns:
        return names
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]


def status_word(r):
    if r is None:
        return '-'
    if r['timed_out']:
        return 'TIMEOUT'
    if r['ok'] and r.get('first_try') and not r['first_try']['ok']:
        return 'pass (2nd try)'
    return 'pass' if r['ok'] else 'FAIL'


def counts_cell(r):
    if r is None:
        return ''
    c = r['counts']
    if c is None:
        return 'rc=%s' % r['rc']
    s = '%d/%d' % (c['passed'], c['ran'] - c['skipped'])
    extra = []
    if c['failed']:
        extra.append('%d failed' % c['failed'])
    if c['skipped']:
        extra.append('%d skipped' % c['skipped'])
    if extra:
        s += ' (' + ', '.join(extra) + ')'
    return s


def totals(results, label, names):
    files_pass = tests_pass = tests_ran = tests_failed = tests_skipped = 0
    for n in names:
        r = results.get((label, n))
        if r is None:
            continue
        files_pass += bool(r['ok'])
        c = r['counts']
        if c:
            tests_pass += c['passed']
            tests_ran += c['ran']
            tests_failed += c['failed']
            tests_skipped += c['skipped']
    return files_pass, tests_pass, tests_ran, tests_failed, tests_skipped


_SECTION = re.compile(r'^<!-- BEGIN (\S+) -->\n.*?^<!-- END \1 -->\n?', re.M | re.S)


def other_sections(path):
    """The blocks of *path* that another generator owns (between
    ``<!-- BEGIN name -->`` and ``<!-- END name -->`` lines), as one string,
    so that rewriting the rest keeps them."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return ''
    return ''.join(m.group(0).rstrip('\n') + '\n' for m in _SECTION.finditer(text))


def write_section(path, name, body):
    """Put *body* into *path* as the block *name* (see other_sections),
    replacing that block if the file has one, else appending it."""
    block = '<!-- BEGIN %s -->\n%s\n<!-- END %s -->\n' % (name, body.strip('\n'), name)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ''
    for m in _SECTION.finditer(text):
        if m.group(1) == name:
            text = text[:m.start()] + block + text[m.end():]
            break
    else:
        text = text.rstrip('\n') + '\n\n' + block if text else block
    with open(path, 'w') as f:
        f.write(text)


def write_doc(path, loops, names, results, discs, elapsed, args, versions):
    labels = [l for l, _ in loops]
    lines = []
    w = lines.append
    w('# gevent test-suite compatibility')
    w('')
    w('Generated by `make gevent-compat` (`compat/run_gevent_tests.py`); do not edit by hand.')
    w('')
    w("gevent's own test suite (`gevent.tests`, from the gevent wheel) run with")
    w('`GEVENT_LOOP` set to each loop below, one process per test file, with the')
    w("environment, command lines and per-file timeouts gevent's own runner")
    w('(`python -m gevent.tests`) uses for that loop.  Network resources are off')
    w('(`GEVENTTEST_USE_RESOURCES=%s`).' % args.resources)
    w('')
    w('- %s' % versions)
    for label, path_ in loops:
        w('- `%s`: `GEVENT_LOOP=%s`' % (label, path_))
    w('- wall time: %.0f s with %d parallel jobs' % (elapsed, args.jobs))
    w('- `ours+py` is the C loop plus the Python bridge `gevent_c/gevent_loop.py`')
    w('  (backend names libuv lacks are dropped, `debug()`, zope.interface')
    w('  declarations); see that module.')
    w('- The example files (`test__example*`) run the `examples/` of the gevent')
    w('  sdist of the same version (the wheel lacks them): %s.' % (
        'unpacked into `%s`' % args.examples.replace(os.path.expanduser('~'), '~')
        if getattr(args, 'examples', None) else 'not available in this run'))
    w('')
    w('## Totals')
    w('')
    w('| loop | files passed | test cases passed | failed | skipped | ran |')
    w('|---|---|---|---|---|---|')
    for label in labels:
        fp, tp, tr, tf, ts = totals(results, label, names)
        w('| %s | %d / %d | %d | %d | %d | %d |' % (label, fp, len(names), tp, tf, ts, tr))
    w('')
    base = labels[-1]
    for a in labels[:-1]:
        regress = [n for n in names
                   if results.get((base, n), {}).get('ok') and not results.get((a, n), {}).get('ok')]
        better = [n for n in names
                  if results.get((a, n), {}).get('ok') and not results.get((base, n), {}).get('ok')]
        w('Files passing on `%s` but not on `%s` (%d): %s' % (
            base, a, len(regress), ', '.join('`%s`' % n for n in regress) or 'none'))
        w('')
        w('Files passing on `%s` but not on `%s` (%d): %s' % (
            a, base, len(better), ', '.join('`%s`' % n for n in better) or 'none'))
        w('')
    w('## Per file')
    w('')
    w('A file passes when its process exits 0 with no failed test case; a file')
    w('that failed (but did not time out) gets one more run, alone, and counts')
    w('as passed if that passes ("2nd try"). Cells')
    w('give test cases passed / run (not counting skips).  `rc=N` means the')
    w('file is not a unittest module (or died before the summary).')
    w('')
    head = '| file |'
    sep = '|---|'
    for label in labels:
        head += ' %s | %s cases | %s s |' % (label, label, label)
        sep += '---|---|---|'
    head += ' notes |'
    sep += '---|'
    w(head)
    w(sep)
    for n in names:
        row = '| %s |' % n
        for label in labels:
            r = results.get((label, n))
            row += ' %s | %s | %s |' % (status_word(r), counts_cell(r),
                                         r['elapsed'] if r else '')
        notes = []
        for label in labels:
            d = discs[label]
            if n + '.py' in d['failing'] or 'FLAKY ' + n + '.py' in d['failing']:
                notes.append('gevent config: %s on %s' % (
                    'flaky' if 'FLAKY ' + n + '.py' in d['failing'] else 'failing', label))
        notes += [note for note, _, _, table in NOTE_SECTIONS if n in table][:1]
        row += ' %s |' % '; '.join(notes)
        w(row)
    w('')
    for _, title, intro, table in NOTE_SECTIONS:
        w('## ' + title)
        w('')
        if intro:
            w(intro)
            w('')
        for n in sorted(table):
            w('- `%s`: %s' % (n, table[n]))
        w('')
    kept = other_sections(path)   # e.g. the peers' suites (run_peer_suites.py)
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
        if kept:
            f.write('\n' + kept)


def versions_line(python):
    out = subprocess.run(
        [python, '-c', 'import sys, gevent, greenlet; print("Python %s, gevent %s, greenlet %s" % '
         '(sys.version.split()[0], gevent.__version__, greenlet.__version__))'],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    return out.stdout.decode().strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--venv', default=DEFAULT_VENV)
    p.add_argument('--loop', action='append', metavar='LABEL=PATH',
                   help='loop to test (repeatable); default ours=gevent_c.core.loop '
                   'and libuv=libuv')
    p.add_argument('--subset', action='store_true',
                   help='CI subset (core, hub, sleep, timeout, socket); first loop only '
                   'unless --loop is given twice; exit 1 if a file fails; does not '
                   'write docs/compat.md')
    p.add_argument('--only', action='append', metavar='GLOB',
                   help='only test files matching GLOB (e.g. test__core*)')
    p.add_argument('-j', '--jobs', type=int, default=2)
    p.add_argument('--timeout', type=float, default=0,
                   help="cap per-file timeout (default: gevent's, 100 s)")
    p.add_argument('--resources', default='-network',
                   help='GEVENTTEST_USE_RESOURCES (default: all but network)')
    p.add_argument('--no-write', action='store_true', help='do not write docs/compat.md')
    p.add_argument('--no-second-chance', dest='second_chance', action='store_false',
                   help='do not re-run failed files once, serially')
    p.add_argument('--out', default=DOC)
    args = p.parse_args()

    python = venv_python(os.path.abspath(args.venv))
    if not os.path.exists(python):
        raise SystemExit('no venv at %s (make gevent-compat creates it)' % args.venv)
    loops = [tuple(s.split('=', 1)) for s in args.loop] if args.loop else list(DEFAULT_LOOPS)
    if args.subset and not args.loop:
        loops = loops[:1]

    base_env = dict(os.environ)
    base_env['GEVENTTEST_USE_RESOURCES'] = args.resources
    base_env['PYTHONPATH'] = ROOT
    discs = {}
    for label, path_ in loops:
        discs[label] = discover(python, path_, base_env)
        log('%s: GEVENT_LOOP=%s -> %s, %d files', label, path_,
            discs[label]['loop'], len(discs[label]['commands']))

    # The same files for every loop: the union, with the first loop's command.
    entries = {}
    for label, _ in loops:
        for e in discs[label]['commands']:
            entries.setdefault(test_name(e['cmd']), e)
    names = sorted(entries)
    if args.subset:
        names = [n for n in names if n in SUBSET]
    names = select(names, args.only)
    args.examples = (ensure_examples(python)
                     if any(n.startswith('test__example') for n in names) else None)

    for label, _ in loops:
        os.makedirs(os.path.join(OUT_DIR, label), exist_ok=True)

    jobs, alone = [], []
    for n in names:
        for label, path_ in loops:
            own = {test_name(e['cmd']): e for e in discs[label]['commands']}
            j = Job(label, path_, n, own.get(n, entries[n]), discs[label])
            # the examples listen on fixed ports: one at a time
            (alone if n + '.py' in discs[label]['run_alone'] or n.startswith('test__example')
             else jobs).append(j)
    # longest-known first would be nicer; interleave loops so partial runs compare.
    log('running %d processes (%d alone), -j%d', len(jobs) + len(alone), len(alone), args.jobs)

    results = {}
    lock = threading.Lock()
    start = time.time()
    done = [0]
    total = len(jobs) + len(alone)

    def report(job):
        r = job.result
        with lock:
            done[0] += 1
            results[(r['label'], r['name'])] = r
            log('[%3d/%d %5.0fs] %-7s %-8s %-40s %6.1fs %s', done[0], total,
                time.time() - start, status_word(r), r['label'], r['name'],
                r['elapsed'], counts_cell(r))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        for fut in concurrent.futures.as_completed(
                [ex.submit(run_job, j, args, OUT_DIR) for j in jobs]):
            report(fut.result())
    for j in alone:
        report(run_job(j, args, OUT_DIR))
    elapsed = time.time() - start

    # Second chance: a file that failed (not timed out) runs again, alone;
    # timing-sensitive tests fail now and then under -j2 on every loop.
    if args.second_chance:
        retry = [j for j in jobs + alone
                 if not j.result['ok'] and not j.result['timed_out']]
        if retry:
            log('second chance for %d failed files, one at a time', len(retry))
        for j in retry:
            first = j.result
            run_job(j, args, OUT_DIR)
            j.result['first_try'] = {k: first[k] for k in ('ok', 'rc', 'counts', 'elapsed')}
            results[(j.label, j.name)] = j.result
            log('  retry %-7s %-8s %-40s %s', status_word(j.result), j.label, j.name,
                counts_cell(j.result))
    elapsed = time.time() - start

    results_name = 'results.json' if not (args.only or args.subset) else 'results-partial.json'
    with open(os.path.join(OUT_DIR, results_name), 'w') as f:
        json.dump({'loops': loops, 'elapsed': elapsed,
                   'results': [results[k] for k in sorted(results)]}, f, indent=1)

    for label, _ in loops:
        fp, tp, tr, tf, ts = totals(results, label, names)
        log('%s: %d/%d files passed; %d test cases passed, %d failed, %d skipped',
            label, fp, len(names), tp, tf, ts)
    log('wall time %.0f s', elapsed)

    if not args.subset and not args.no_write:
        write_doc(args.out, loops, names, results, discs, elapsed, args,
                  versions_line(python))
        log('wrote %s', os.path.relpath(args.out, ROOT))
    if args.subset:
        label = loops[0][0]
        failed = [n for n in names if not results[(label, n)]['ok']]
        new = [n for n in failed if n not in SUBSET_KNOWN_FAILING]
        fixed = [n for n in names if n in SUBSET_KNOWN_FAILING and n not in failed]
        if fixed:
            log('known failures that pass now (remove from SUBSET_KNOWN_FAILING): %s',
                ' '.join(fixed))
        if failed:
            log('subset failures on %s: %s', label, ' '.join(failed))
        if new:
            log('NEW failures (regressions): %s', ' '.join(new))
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
