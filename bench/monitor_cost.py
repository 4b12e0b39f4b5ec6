#!/usr/bin/env python3
"""What the blocking monitor costs: a busy and an idle hub, monitor off and on,
gevent (libev) and gevent_c side by side.

    python3 bench/monitor_cost.py [--python PY] [--rounds R] [-n N]

Each cell is a fresh process (``GEVENT_MONITOR_THREAD_ENABLE`` 0 or 1,
``GEVENT_MAX_BLOCKING_TIME`` 0.1, gevent's default); the four
configurations run interleaved, round after round, and the table gives the
median over rounds.  Busy: µs per ``sleep(0)`` (a greenlet switch to the hub
and back, where gevent's monitor adds a trace call).  Idle: CPU ms used by a
hub that waits 2 s for nothing, and its voluntary context switches (the
monitor thread's wake-ups).  ``--python``: an interpreter with gevent (the
compat venv's), used for both libraries so they share one CPython.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PY = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
                          'gevent_c', 'compat-venv', 'bin', 'python')

CHILD = r'''
import json, resource, sys, time
impl, n = sys.argv[1], int(sys.argv[2])
if impl == 'gevent':
    import gevent.hub as hub
else:
    import gevent_c.hub as hub
h = hub.get_hub()
hub.sleep(0)
assert (h.periodic_monitoring_thread is not None) == (sys.argv[3] == '1'), \
    h.periodic_monitoring_thread
for _ in range(n // 10):
    hub.sleep(0)
t = time.perf_counter()
for _ in range(n):
    hub.sleep(0)
busy = (time.perf_counter() - t) / n * 1e6
r0 = resource.getrusage(resource.RUSAGE_SELF)
hub.sleep(2.0)
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e3
print(json.dumps({'busy_us': busy, 'idle_cpu_ms': cpu, 'idle_cs': r1.ru_nvcsw - r0.ru_nvcsw}))
'''


def run(py, impl, monitor, n):
    env = {k: v for k, v in os.environ.items() if not k.startswith('GEVENT')}
    env['PYTHONPATH'] = ROOT
    env['GEVENT_MONITOR_THREAD_ENABLE'] = monitor
    env['GEVENT_MAX_BLOCKING_TIME'] = '0.1'
    out = subprocess.run([py, '-c', CHILD, impl, str(n), monitor], env=env, cwd='/',
                         stdout=subprocess.PIPE, check=True).stdout
    return json.loads(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--python', default=DEFAULT_PY if os.path.exists(DEFAULT_PY) else sys.executable)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('-n', type=int, default=200000)
    args = p.parse_args()
    configs = [(impl, mon) for impl in ('gevent', 'gevent_c') for mon in ('0', '1')]
    res = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs:
            res[c].append(run(args.python, c[0], c[1], args.n))
        sys.stderr.write('round %d done\n' % (r + 1))
    med = {c: {k: statistics.median(x[k] for x in v) for k in v[0]} for c, v in res.items()}
    print('| library | monitor | sleep(0) µs | idle 2 s: CPU ms | idle 2 s: wake-ups |')
    print('|---|---|---|---|---|')
    for c in configs:
        m = med[c]
        print('| %s | %s | %.3f | %.1f | %d |' % (c[0], 'on' if c[1] == '1' else 'off',
                                                m['busy_us'], m['idle_cpu_ms'], m['idle_cs']))
    print()
    for impl in ('gevent', 'gevent_c'):
        off, on = med[(impl, '0')], med[(impl, '1')]
        print('%s: sleep(0) monitor on / off = %.2f; idle CPU on - off = %.1f ms per 2 s' % (
            impl, on['busy_us'] / off['busy_us'], on['idle_cpu_ms'] - off['idle_cpu_ms']))


if __name__ == '__main__':
    main()
