"""The TCP echo case of `make bench`: greenlet servers against asyncio and uvloop.

    python3 bench/echo.py [--impls a,b] [--conns 1,10,100] [--repeat N] [--seconds S]
    python3 bench/echo.py --callgrind [--impls a,b] [--conns 1,100]   # instructions per round trip

bench/run.py calls measure(), table() and section() (the docs/performance.md part); run on its
own this prints the table.  The load generator is bench/echo_client.c, compiled on first use
with the C compiler Python was built with (the one `setup.py build_ext` uses) into
build/bench/, outside version control.  The servers are bench/echo_servers.py.

Every measurement starts a fresh server process pinned to CPU 0, waits for its port, runs the
client pinned to CPU 1 with the server's PID, and stops the server by that PID.  Repeats are the
outer loop and the implementations rotate within a repeat, so machine noise is spread over all
of them.  The client reads the server's utime + stime from /proc/PID/stat at both ends of its
measured window: the server CPU per round trip covers exactly the round trips it counted.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENT_SRC = HERE / 'echo_client.c'
SERVERS_PY = HERE / 'echo_servers.py'
BUILD = ROOT / 'build' / 'bench'
IMPLS = ('gevent_c', 'gevent_c-io', 'gevent', 'asyncio', 'uvloop')
BASE = 'uvloop'                      # the ratios are against it
CONNS = (1, 10, 100)
SERVER_CPU, CLIENT_CPU = 0, 1
NAMES = {'gevent_c': 'gevent_c', 'gevent_c-io': 'gevent_c, io.recv_into/send',
         'gevent': 'gevent (libev)', 'asyncio': 'asyncio', 'uvloop': 'uvloop'}
# metric: (label, unit, better)
METRICS = {
    'rps': ('round trips/s', 'rps', 'higher'),
    'p50': ('p50 latency', 'ns', 'lower'),
    'p99': ('p99 latency', 'ns', 'lower'),
    'cpu': ('server CPU per round trip', 'ns', 'lower'),
}
# The echo server's targets, against uvloop in the same run: (metric, conns, bound, kind).
TARGETS = [('rps', 100, 1.0, '≥'), ('rps', 10, 1.0, '≥'), ('cpu', 100, 1.3, '≤'),
           ('p99', 1, 1.0, '≤')]


class Failed(Exception):
    pass


def outcome(res, impl, line, run):
    """run() one measurement of impl; returns its result, or None when it failed or impl is
    n/a, which res[impl] and the progress line then record."""
    try:
        out = run()
    except Failed as e:
        res[impl] = {'error': str(e)}
        line.append('%s FAILED: %s' % (impl, e))
        return None
    if 'na' in out:
        res[impl] = {'na': out['na']}
        line.append('%s n/a' % impl)
        return None
    return out


def compiler():
    cc = os.environ.get('CC') or sysconfig.get_config_var('CC') or 'cc'
    return shlex.split(cc)


def build_client():
    """Compile bench/echo_client.c (only when the source is newer than the binary)."""
    exe = BUILD / 'echo_client'
    if exe.exists() and exe.stat().st_mtime >= CLIENT_SRC.stat().st_mtime:
        return exe
    BUILD.mkdir(parents=True, exist_ok=True)
    cmd = compiler() + ['-O2', '-Wall', '-o', str(exe), str(CLIENT_SRC)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise Failed('compiling the echo client failed: %s\n%s' % (' '.join(cmd), p.stderr))
    return exe


def pinned(cpu):
    """preexec_fn: pin the child to one CPU (when there are two to choose from)."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, 'sched_setaffinity'):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def server_env(impl):
    env = dict(os.environ)
    env.pop('GEVENT_LOOP', None)
    if impl.startswith('gevent_c'):
        env['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + [p for p in [env.get('PYTHONPATH')]
                                                            if p])
    return env


def stop(proc):
    """Stop a server by its own PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def run_one(client, impl, conns, seconds, warmup, python=sys.executable):
    """One fresh server, one client run: {metric: value} or {'na': why}."""
    lifetime = int(seconds + warmup + 60)
    proc = subprocess.Popen([python, str(SERVERS_PY), impl, str(lifetime)],
                            env=server_env(impl), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=pinned(SERVER_CPU))
    try:
        line = proc.stdout.readline().strip()
        if line.startswith('na:'):
            return {'na': line[3:].strip()}
        if not line.isdigit():
            stop(proc)
            raise Failed('%s server did not start: %s %s' % (impl, line,
                                                             proc.stderr.read()[-600:]))
        cmd = [str(client), line, str(conns), str(seconds), str(warmup), str(proc.pid)]
        try:
            c = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=seconds + warmup + 60, preexec_fn=pinned(CLIENT_CPU))
        except subprocess.TimeoutExpired:
            raise Failed('%s: the client timed out' % impl)
        if c.returncode:
            raise Failed('%s: client exit %d: %s' % (impl, c.returncode, c.stderr.strip()))
        if proc.poll() is not None:
            raise Failed('%s server died: %s' % (impl, proc.stderr.read()[-600:]))
        out = json.loads(c.stdout)
    finally:
        stop(proc)
    n = out['round_trips']
    cpu = out['server_cpu_s']
    return {'rps': out['rps'], 'p50': out['p50_ns'], 'p99': out['p99_ns'],
            'cpu': cpu * 1e9 / n if cpu >= 0 and n else None}


def measure(impls=IMPLS, conns=CONNS, repeat=5, seconds=3.0, warmup=0.5, log=print):
    """results[conns][impl] = {'values': {metric: [...]}} or {'na': why} or {'error': why}"""
    client = build_client()
    results = {c: {i: {'values': {}} for i in impls} for c in conns}
    for r in range(repeat):
        for c in conns:
            t0, line = time.time(), []
            for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
                res = results[c]
                if 'values' not in res[impl]:
                    continue
                out = outcome(res, impl, line, lambda: run_one(client, impl, c, seconds, warmup))
                if out is None:
                    continue
                for k, v in out.items():
                    if v is not None:
                        res[impl]['values'].setdefault(k, []).append(v)
                line.append('%s %.0f/s p99 %.0fus cpu %.2fus' % (
                    impl, out['rps'], out['p99'] / 1e3, (out['cpu'] or 0) / 1e3))
            log('[%d/%d] echo %3d conns %5.1fs  %s' % (r + 1, repeat, c, time.time() - t0,
                                                       '; '.join(line)))
    return results


# --- callgrind: server instructions per round trip ------------------------------------------

def callgrind_one(client, impl, conns, seconds, out, python=sys.executable):
    """(instructions, round trips) of one server under callgrind, for `seconds` of load."""
    lifetime = int(seconds + 600)
    cmd = ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out, python,
           str(SERVERS_PY), impl, str(lifetime)]
    proc = subprocess.Popen(cmd, env=server_env(impl), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=pinned(SERVER_CPU))
    try:
        line = proc.stdout.readline().strip()
        if line.startswith('na:'):
            return None
        if not line.isdigit():
            raise Failed('%s server did not start under valgrind: %s' % (impl, line))
        c = subprocess.run([str(client), line, str(conns), str(seconds), '2'],
                           capture_output=True, text=True, timeout=seconds + 120,
                           preexec_fn=pinned(CLIENT_CPU))
        if c.returncode:
            raise Failed('%s: client exit %d: %s' % (impl, c.returncode, c.stderr.strip()))
        n = json.loads(c.stdout)['round_trips']
    finally:
        stop(proc)           # SIGTERM: callgrind still writes its totals
    return callgrind_total(out), n


def callgrind_total(path):
    """The instruction count a callgrind run wrote to `path`."""
    m = re.search(r'^(?:summary|totals):\s*(\d+)', Path(path).read_text(errors='replace'), re.M)
    if not m:
        raise Failed('no callgrind totals in %s' % path)
    return int(m.group(1))


def callgrind(impls=IMPLS, conns=(1, 100), seconds=(3.0, 6.0), log=print):
    """Server instructions per round trip, differenced over two load durations (startup and
    warm-up cancel out).  Under valgrind the server is the bottleneck, so at N connections a poll
    finds up to N ready: this is the saturated cost per round trip.  At many connections it
    still depends on how many replies each poll finds, so on a busy machine compare servers
    within one run."""
    client = build_client()
    tmp = tempfile.mkdtemp(prefix='bench-echo-cg-')
    rows = {}
    try:
        for c in conns:
            for impl in impls:
                runs = []
                for k, secs in enumerate(seconds):
                    runs.append(callgrind_one(client, impl, c, secs,
                                              os.path.join(tmp, '%s.%d.%d' % (impl, c, k))))
                    if runs[-1] is None:
                        break
                if runs[-1] is None:
                    log('  echo %-8s %3d conns: n/a' % (impl, c))
                    continue
                (i1, n1), (i2, n2) = runs
                per = (i2 - i1) / (n2 - n1) if n2 != n1 else float('nan')
                rows.setdefault(c, {})[impl] = per
                log('  echo %-8s %3d conns: %d and %d round trips: %s instr per round trip' % (
                    impl, c, n1, n2, '{:,.0f}'.format(per)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def callgrind_table(rows):
    impls = [i for i in IMPLS if any(i in r for r in rows.values())]
    lines = ['| connections | ' + ' | '.join('%s instr/round trip' % NAMES[i] for i in impls) +
             ' | gevent_c ÷ %s |' % BASE, '|' + '---|' * (len(impls) + 2)]
    for c, r in rows.items():
        a, b = r.get('gevent_c'), r.get(BASE)
        lines.append('| %d | ' % c + ' | '.join('{:,.0f}'.format(r[i]) if i in r else '—'
                                                for i in impls) +
                     ' | %s |' % ('%.2f' % (a / b) if a and b else '—'))
    return '\n'.join(lines)


# --- report ------------------------------------------------------------------------------------

def med(results, c, impl, metric):
    v = results.get(c, {}).get(impl, {}).get('values', {}).get(metric)
    return statistics.median(v) if v else None


def to_base(results, c, impl, metric):
    a, b = med(results, c, impl, metric), med(results, c, BASE, metric)
    return a / b if a is not None and b else None


def fmt(v, unit):
    if v is None:
        return '—'
    if unit == 'rps':
        return '{:,.0f}'.format(v)
    for scale, suffix in ((1e9, 's'), (1e6, 'ms'), (1e3, 'µs')):
        if abs(v) >= scale:
            return '%.3g %s' % (v / scale, suffix)
    return '%.3g ns' % v


def cell(results, c, impl, metric):
    r = results.get(c, {}).get(impl, {})
    if 'na' in r:
        return 'n/a'
    if 'error' in r:
        return 'error'
    return fmt(med(results, c, impl, metric), METRICS[metric][1])


def table(results):
    impls = [i for i in IMPLS if any(i in results[c] for c in results)]
    head = ['connections', 'server']
    for m in METRICS:
        head += [METRICS[m][0], '÷ ' + BASE]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for c in results:
        for impl in impls:
            if impl not in results[c]:
                continue
            cells = [str(c), NAMES[impl]]
            for m in METRICS:
                r = to_base(results, c, impl, m)
                cells += [cell(results, c, impl, m), '—' if r is None else '%.2f' % r]
            lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def summary(results, impls=('gevent_c', 'gevent_c-io')):
    """The target lines for gevent_c's servers (the plain-socket one, then the io one)."""
    return '\n'.join(filter(None, (summary_one(results, i) for i in impls
                                    if any(i in results[c] for c in results))))


def summary_one(results, impl):
    out = []
    for metric, c, bound, kind in TARGETS:
        if c not in results:
            continue
        r = to_base(results, c, impl, metric)
        ok = r is not None and (r >= bound if kind == '≥' else r <= bound)
        out.append('echo, %s %s at %d connections: %s %s %g× %s -> %s' % (
            impl, METRICS[metric][0], c, '—' if r is None else '%.2f×' % r, kind, bound, BASE,
            'met' if ok else 'n/a' if r is None else 'missed'))
    return '\n'.join(out)


def chart(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    impls = [i for i in IMPLS if i != BASE and any(i in results[c] for c in results)]
    conns = list(results)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(14, 4))
    width = 0.8 / max(1, len(impls))
    for ax, m in zip(axes, METRICS):
        for k, impl in enumerate(impls):
            xs, ys = [], []
            for x, c in enumerate(conns):
                r = to_base(results, c, impl, m)
                if r is not None:
                    xs.append(x + (k - (len(impls) - 1) / 2) * width)
                    ys.append(r)
            ax.bar(xs, ys, width, label=NAMES[impl])
        ax.axhline(1.0, color='black', lw=0.8)
        ax.set_xticks(range(len(conns)))
        ax.set_xticklabels(['%d conn' % c for c in conns])
        ax.set_title('%s ÷ %s\n(%s is better)' % (METRICS[m][0], BASE, METRICS[m][2]),
                     fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)


def section(results, info, docs):
    """The docs/performance.md section (and docs/performance-echo.png)."""
    chart(results, docs / 'performance-echo.png')
    pin = ('server on CPU %d, client on CPU %d' % (SERVER_CPU, CLIENT_CPU)
           if pinned(0) else 'not pinned (one CPU)')
    return f"""## TCP echo server

One server process against a C load generator (`bench/echo_client.c`) that keeps N connections
open on loopback, each with one 64-byte message in flight. gevent_c and gevent run the same
greenlet-per-connection code on their shared hub API (non-blocking `recv_into`/`send`,
`hub.wait()` on the connection's io watcher when a call would block); "gevent_c, io.recv_into/send"
is the same server with the io watchers' own `recv_into()`/`send()` (a gevent_c extension,
`docs/hub.md`); asyncio and uvloop run an `asyncio.Protocol` that writes back what it receives
(`bench/echo_servers.py`). Each cell is the
median over {info['repeat']} fresh server processes ({info['seconds']:g} s measured after
{info['warmup']:g} s of warm-up), interleaved; {pin}. Server CPU is utime + stime from
`/proc/PID/stat` over the measured window, divided by the round trips. The `÷ uvloop` columns
are medians over uvloop's medians in the same run: above 1 is better for round trips/s, below 1
for the rest. Targets: round trips/s ≥ 1.0× uvloop at 10 and 100 connections, server
CPU ≤ 1.3× uvloop at 100, p99 ≤ uvloop at 1.

{table(results)}

```
{summary(results)}
```

![echo: ratios to uvloop](performance-echo.png)

"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--impls', default=','.join(IMPLS))
    ap.add_argument('--conns', default=','.join(map(str, CONNS)))
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--seconds', type=float, default=3.0)
    ap.add_argument('--warmup', type=float, default=0.5)
    ap.add_argument('--callgrind', action='store_true',
                    help='server instructions per round trip under valgrind instead')
    ap.add_argument('--update-doc', action='store_true',
                    help='rewrite only the echo section of docs/performance.md (and its chart) '
                         'with this run, and the copy of bench/notes.md there; the other tables '
                         'stay from the last full make bench')
    args = ap.parse_args()
    impls = tuple(args.impls.split(','))
    bad = [i for i in impls if i not in IMPLS]
    if bad:
        ap.error('unknown implementation: %s' % ', '.join(bad))
    if args.callgrind:
        conns = [int(c) for c in args.conns.split(',')] if args.conns != ','.join(
            map(str, CONNS)) else [1, 100]
        print(callgrind_table(callgrind(impls, conns, log=lambda s: print(s, flush=True))))
        return 0
    results = measure(impls, [int(c) for c in args.conns.split(',')], args.repeat,
                      args.seconds, args.warmup, log=lambda s: print(s, flush=True))
    print()
    print(table(results))
    print(summary(results))
    if args.update_doc:
        update_doc(results, {'repeat': args.repeat, 'seconds': args.seconds,
                             'warmup': args.warmup})
    return 0


def update_doc(results, info, docs=HERE.parent / 'docs'):
    """Replace the echo section of docs/performance.md (a full make bench wrote it) and the
    copy of bench/notes.md at its end; the micro-benchmark tables are left as they are."""
    path = docs / 'performance.md'
    text = path.read_text()
    start = text.index('## TCP echo server')
    end = text.index('\n## ', start + 1) + 1
    new = section(results, info, docs).rstrip('\n') + (
        '\n\nThis section was measured again on its own (`python3 bench/echo.py --update-doc`, '
        '%s); the tables above are from the last full `make bench`.\n\n'
        % time.strftime('%Y-%m-%d'))
    text = text[:start] + new + text[end:]
    notes = (HERE / 'notes.md').read_text()
    first = notes.split('\n', 1)[0]
    text = text[:text.index(first + '\n')] + notes
    path.write_text(text)
    print('wrote the echo section of docs/performance.md and docs/performance-echo.png')


if __name__ == '__main__':
    sys.exit(main())
