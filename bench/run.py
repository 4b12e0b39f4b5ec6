"""`make bench`: gevent_c side by side with gevent (libev and libuv loops) and eventlet.

    python3 bench/run.py [--cases a,b] [--impls x,y] [--repeat N] [--upgrade]
    python3 bench/run.py --quick        # every case once, gevent_c only: does it run?
    python3 bench/run.py --callgrind    # instructions per op under valgrind
    python3 bench/run.py --cases echo   # only the TCP echo servers (bench/echo.py)

A full run creates .bench-venv/ (latest gevent, eventlet, matplotlib from PyPI), re-runs itself
there, measures every case in fresh processes (bench/cases.py), interleaved across
implementations, and writes docs/performance.md and docs/performance.png (tracked files) and
the raw results to build/bench/results.json; it says so before it starts.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = ROOT / '.bench-venv'
PEERS = ['gevent', 'eventlet', 'matplotlib', 'cffi', 'uvloop']   # cffi: gevent's libuv loop
CASES_PY = str(HERE / 'cases.py')
RESULTS = ROOT / 'build' / 'bench' / 'results.json'
sys.path.insert(0, str(HERE))
from cases import CASES, ALL  # noqa: E402
import echo  # noqa: E402
from echo import Failed, outcome  # noqa: E402


def env_for(impl):
    env = dict(os.environ)
    env.pop('GEVENT_LOOP', None)
    if impl in ('gevent_c', 'gevent-ours'):
        env['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
    if impl == 'gevent-libuv':
        env['GEVENT_LOOP'] = 'libuv'
    return env


def run_case(impl, case, n, timeout=300, prefix=(), extra=()):
    cmd = list(prefix) + [sys.executable, CASES_PY, impl, case, str(n)] + list(extra)
    try:
        p = subprocess.run(cmd, env=env_for(impl), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed('timed out after %d s' % timeout)
    lines = p.stdout.strip().splitlines()
    if p.returncode or not lines:
        raise Failed('exit %d: %s' % (p.returncode, p.stderr.strip()[-600:]))
    return json.loads(lines[-1])


# --- the bench venv ------------------------------------------------------------------------

def ensure_venv(upgrade):
    py = VENV / 'bin' / 'python'
    if not py.exists():
        print('creating %s' % VENV, flush=True)
        subprocess.check_call([sys.executable, '-m', 'venv', str(VENV)])
    have = subprocess.call([str(py), '-c', 'import %s' % ', '.join(PEERS)],
                           stderr=subprocess.DEVNULL) == 0
    if upgrade or not have:
        print('installing %s into %s' % (' '.join(PEERS), VENV), flush=True)
        subprocess.check_call([str(py), '-m', 'pip', 'install', '-q', '-U', 'pip'] + PEERS)
    if subprocess.call([str(py), '-c', 'import gevent_c.hub'], env=env_for('gevent_c'),
                       stderr=subprocess.DEVNULL):
        print('building gevent_c in place', flush=True)
        subprocess.check_call([sys.executable, 'setup.py', '-q', 'build_ext', '--inplace'],
                              cwd=str(ROOT))
    return py


def versions():
    code = ('import json, greenlet, gevent, eventlet, platform;'
            'print(json.dumps({"python": platform.python_version(), "greenlet":'
            ' greenlet.__version__, "gevent": gevent.__version__,'
            ' "eventlet": eventlet.__version__}))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    v = json.loads(out.stdout)
    try:
        cpu = re.search(r'model name\s*:\s*(.*)', Path('/proc/cpuinfo').read_text()).group(1)
    except (OSError, AttributeError):
        cpu = 'unknown CPU'
    v['machine'] = '%s, %d CPUs, Linux %s' % (cpu, os.cpu_count(), os.uname().release)
    return v


# --- timing runs -------------------------------------------------------------------------------

def impls_for(name, impls):
    if CASES[name].impls == ('greenlet',):      # the floors: no hub, always measured
        return ['greenlet']
    return [i for i in impls if i in CASES[name].impls]


def short(metrics):
    import report
    return ' '.join(report.fmt_metric(m, v) for m, v in metrics.items())


def measure(names, impls, repeat, quick):
    """results[case][impl] = {'values': {metric: [...]}} or {'na': why} or {'error': why}

    Repeats are the outer loop, so each case's samples spread over the whole run and a burst of
    machine noise hits one sample of every case rather than every sample of one case; within a
    repeat the implementations run back to back, in an order that rotates."""
    names = [name for name in names if impls_for(name, impls)]   # e.g. gevent-only cases
    results = {name: {i: {'values': {}} for i in impls_for(name, impls)} for name in names}
    for r in range(repeat):
        for k, name in enumerate(names, 1):
            res, here = results[name], impls_for(name, impls)
            n = CASES[name].quick if quick else CASES[name].n
            t0 = time.time()
            line = []
            for impl in here[r % len(here):] + here[:r % len(here)]:
                if 'values' not in res[impl]:
                    continue                        # n/a or failed on an earlier repeat
                out = outcome(res, impl, line, lambda: run_case(impl, name, n))
                if out is None:
                    continue
                for metric, v in out['metrics'].items():
                    res[impl]['values'].setdefault(metric, []).append(v)
                line.append('%s %s' % (impl, short(out['metrics'])))
            print('[%d/%d %2d/%d] %-12s %5.1fs  %s' % (r + 1, repeat, k, len(names), name,
                                                    time.time() - t0, '; '.join(line)),
                  flush=True)
    return results


# --- callgrind ---------------------------------------------------------------------------------

def callgrind(names, impls):
    if not shutil.which('valgrind'):
        print('--callgrind: valgrind is not installed (Debian: apt-get install valgrind)')
        return 1
    jobs = []
    for name in names:
        case = CASES[name]
        if not case.callgrind:
            continue
        if name.startswith('spawn_'):
            size = int(name.split('_')[1])
            n1, n2 = 2 * size, 4 * size
        elif name.startswith('ts'):          # timers at scale: whole batches of 1,000
            n1, n2 = 2000, 4000
        else:
            n1 = max(100, case.n // 50)
            n2 = 2 * n1
        for impl in impls_for(name, impls):
            jobs += [(name, impl, n1), (name, impl, n2)]
    print('callgrind: %d runs (two run lengths per case and implementation)' % len(jobs),
          flush=True)
    tmp = tempfile.mkdtemp(prefix='bench-cg-')
    import floors
    floors.load()      # build bench/floor.c once, before the parallel runs

    def one(job):
        name, impl, n = job
        out = os.path.join(tmp, '%s.%s.%d' % job)
        prefix = ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out]
        try:
            res = run_case(impl, name, n, timeout=1800, prefix=prefix, extra=['cold'])
        except Failed as e:
            return job, 'error: ' + str(e)
        if 'na' in res:
            return job, 'n/a'
        return job, echo.callgrind_total(out)

    with ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        counts = {}
        for job, v in ex.map(one, jobs):
            counts[job] = v
            print('  %-12s %-13s n=%-6d %s' % (job + (v,)), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    rows = {}
    for (name, impl, n) in jobs[::2]:
        n2 = next(j[2] for j in jobs if j[:2] == (name, impl) and j[2] != n)
        a, b = counts[(name, impl, n)], counts[(name, impl, n2)]
        rows.setdefault(name, {})[impl] = ((b - a) / (n2 - n) if isinstance(a, int)
                                           and isinstance(b, int) else a)
    import report
    print()
    print(report.callgrind_table(rows, impls))
    from cases import INSTR_TARGETS
    for name, (target, floor) in INSTR_TARGETS.items():
        v = rows.get(name, {}).get('gevent_c')
        if isinstance(v, float):
            fl = rows.get(floor, {}).get('greenlet') if floor else None
            print('instructions, %s: %s <= %s: %s%s' % (
                name, '{:,.0f}'.format(v), '{:,}'.format(target),
                'met' if v <= target else 'missed',
                '' if not isinstance(fl, float) else ' (floor %s: %s)' % (
                    floor, '{:,.0f}'.format(fl))))
    return 0


# --- main --------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='each case once, gevent_c only, tiny n')
    ap.add_argument('--callgrind', action='store_true', help='instructions per op (valgrind)')
    ap.add_argument('--cases', help='comma-separated subset of: ' + ','.join(list(CASES) +
                                                                            ['echo']))
    ap.add_argument('--impls', help='comma-separated subset of: ' + ','.join(ALL))
    ap.add_argument('--repeat', type=int, default=5, help='fresh processes per case and impl')
    ap.add_argument('--upgrade', action='store_true', help='pip install -U the peers first')
    args = ap.parse_args()

    names = args.cases.split(',') if args.cases else list(CASES) + ['echo']
    default_impls = ('gevent_c',) if args.quick else \
        ('gevent_c', 'gevent') if args.callgrind else ALL
    impls = args.impls.split(',') if args.impls else list(default_impls)
    bad = [c for c in names if c not in CASES and c != 'echo'] + \
        [i for i in impls if i not in ALL]
    if bad:
        ap.error('unknown case or implementation: %s' % ', '.join(bad))
    run_echo = 'echo' in names          # the echo case: bench/echo.py
    names = [n for n in names if n != 'echo']
    echo_impls = [i for i in echo.IMPLS if i in impls or i in ('asyncio', echo.BASE)]

    if args.quick:
        t0 = time.time()
        results = measure(names, impls, 1, quick=True)
        if run_echo:   # gevent_c and asyncio (no uvloop outside the bench venv)
            results['echo'] = echo.measure(('gevent_c', 'asyncio'), (10,), 1, 0.3, 0.1)[10]
        failed = [(c, i) for c, r in results.items() for i, v in r.items() if 'error' in v]
        na = [(c, i) for c, r in results.items() for i, v in r.items() if 'na' in v]
        print('bench --quick: %d cases in %.1f s; n/a: %s; failed: %s' % (
            len(results), time.time() - t0, ', '.join(c for c, _ in na) or 'none',
            ', '.join('%s (%s)' % f for f in failed) or 'none'))
        return 1 if failed else 0

    if Path(sys.prefix).resolve() != VENV.resolve():
        full = not (args.cases or args.impls or args.callgrind)
        print('bench: peers from PyPI (%s) go into %s/ (about 220 MB, %s; remove it when done:'
              ' rm -rf %s);\nbench: then every case runs in fresh processes%s.' % (
                  ', '.join(PEERS), VENV, 'there already' if (VENV / 'bin').exists()
                  else 'created now', VENV.relative_to(ROOT),
                  ', about 5 minutes on an idle 2-CPU machine; it rewrites docs/performance.md '
                  'and docs/performance.png (tracked: review with git diff) and saves the raw '
                  'results in %s' % RESULTS.relative_to(ROOT) if full else
                  ' (a partial run: docs/ are not rewritten)'), flush=True)
        py = ensure_venv(args.upgrade)
        os.execv(str(py), [str(py), __file__] + sys.argv[1:])

    if args.callgrind:
        rc = callgrind(names, impls) if names else 0
        if run_echo and rc == 0:
            print('\necho servers under callgrind (instructions per round trip):', flush=True)
            print(echo.callgrind_table(echo.callgrind(echo_impls,
                                                      log=lambda s: print(s, flush=True))))
            print('\nthe echo server\'s path in one process (bench/echo_inproc.py), which no '
                  'client or machine load moves:', flush=True)
            import echo_inproc
            echo_inproc.report([i for i in ('gevent_c', 'gevent_c-io', 'gevent')
                                if i.split('-')[0] in impls])
        return rc

    import report
    t0 = time.time()
    info = versions()
    load0 = os.getloadavg()[0]
    print('%s; Python %s, greenlet %s, gevent %s, eventlet %s' % (
        info['machine'], info['python'], info['greenlet'], info['gevent'], info['eventlet']))
    print('%d cases x %s x %d repeats, fresh process each' % (
        len(names), ', '.join(impls), args.repeat), flush=True)
    results = measure(names, impls, args.repeat, quick=False)
    echo_info = {'repeat': args.repeat, 'seconds': 3.0, 'warmup': 0.5}
    echo_results = echo.measure(echo_impls, echo.CONNS, args.repeat, echo_info['seconds'],
                                echo_info['warmup'], log=lambda s: print(s, flush=True)) \
        if run_echo else None
    info['elapsed'] = time.time() - t0
    info['load'] = '%.1f at the start, %.1f at the end' % (load0, os.getloadavg()[0])
    info['repeat'] = args.repeat
    table = report.table(results, impls)
    print()
    print(table)
    if report.ours_rows(results):
        print()
        print(report.ours_table(results))
    print(report.summary(results))
    if echo_results:
        print()
        print(echo.table(echo_results))
        print(echo.summary(echo_results))
    if args.cases or args.impls:
        print('(partial run: docs/performance.md not rewritten)')
    else:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({'results': results, 'impls': impls, 'info': info}))
        report.write_doc(results, impls, info, ROOT / 'docs',
                         echo.section(echo_results, echo_info, ROOT / 'docs')
                         if echo_results else '')
        print('wrote docs/performance.md and docs/performance.png (%.0f s); raw results in %s '
              '(%s/bin/python bench/report.py %s redraws both, without the echo section)' % (
                  info['elapsed'], RESULTS.relative_to(ROOT), VENV.relative_to(ROOT),
                  RESULTS.relative_to(ROOT)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
