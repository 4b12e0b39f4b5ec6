"""Tables, chart and docs/performance.md from run.py's results."""
import statistics
import time
from pathlib import Path

from cases import CASES, ROWS

PEERS = ('gevent', 'gevent-libuv', 'eventlet')
NAMES = {'gevent_c': 'gevent_c', 'gevent': 'gevent libev', 'gevent-libuv': 'gevent libuv',
         'eventlet': 'eventlet', 'greenlet': 'greenlet',
         'gevent-ours': 'gevent on gevent_c.core.loop'}
OURS = 'gevent-ours'   # gevent's own hub with GEVENT_LOOP=gevent_c.core.loop
OURS_TARGET = 1.0      # faster than gevent on its default loop (libev)
FLOOR_TARGET = 2.0     # sleep(0) at most 2x a raw greenlet switch pair
FLOORS = ('floor', 'floor_spawn', 'floor_memory', 'floor_io', 'floor_hub')   # no hub: greenlet/C


def fmt(v, unit):
    if unit == 'count':
        return '%g' % v
    if unit == 'B':
        return '{:,.0f} B'.format(v)
    for scale, suffix in ((1e9, 's'), (1e6, 'ms'), (1e3, 'µs')):
        if abs(v) >= scale:
            return '%.3g %s' % (v / scale, suffix)
    return '%.3g ns' % v


def values(results, row, impl):
    """(list of values | None, why-not string)"""
    r = results.get(row.case, {}).get(impl)
    if r is None:
        return None, '—'
    if 'na' in r:
        return None, 'n/a'
    if 'error' in r:
        return None, 'error'
    return r['values'].get(row.metric), ''


def min_median(results, row, impl):
    """An implementation's table cell: 'min / median', or why there is none."""
    v, why = values(results, row, impl)
    return '%s / %s' % (fmt(min(v), row.unit), fmt(statistics.median(v), row.unit)) if v else why


def median(results, row, impl):
    v, _ = values(results, row, impl)
    return statistics.median(v) if v else None


def ratio(results, row, peer, impl='gevent_c'):
    a, b = median(results, row, impl), median(results, row, peer)
    if a is None or not b:
        return None
    return a / b


def row_of(metric):
    return next(r for r in ROWS if r.metric == metric)


def floor_ratio(results):
    s0 = median(results, row_of('sleep0'), 'gevent_c')
    fl = median(results, row_of('floor'), 'greenlet')
    return s0 / fl if s0 and fl else None


def status(results, row):
    """(target text, status text) for one row"""
    if row.metric == 'floor':
        r = floor_ratio(results)
        return ('`sleep(0)` ≤ %g× this' % FLOOR_TARGET,
                '' if r is None else '%s (%.2f×)' % ('met' if r <= FLOOR_TARGET else 'missed', r))
    if row.target is None:
        return '', ''
    v, why = values(results, row, 'gevent_c')
    if row.target == 'zero':
        return '0', why or ('met' if max(v) == 0 else 'missed')
    if v is None:
        return '≤ %g' % row.target, why
    r = ratio(results, row, 'gevent')
    text = '' if r is None else 'met' if r <= row.target else 'missed'
    e = ratio(results, row, 'eventlet')
    if e is not None and e >= 1:
        text += ', behind eventlet'
    return '≤ %g' % row.target, text


def table(results, impls):
    impls = [i for i in impls if i not in ('greenlet', OURS)]
    peers = [p for p in PEERS if p in impls] if 'gevent_c' in impls else []
    head = (['case'] + [NAMES[i] for i in impls] + ['÷ %s' % NAMES[p] for p in peers] +
            ['target (÷ libev)', 'status'])
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in ROWS:
        if row.case not in results or (row.metric not in FLOORS
                                       and 'gevent_c' not in CASES[row.case].impls):
            continue   # gevent-only cases are in ours_table
        cells = [row.label]
        for impl in impls:
            if row.metric in FLOORS:     # shown in the gevent_c column
                impl = 'greenlet' if impl == 'gevent_c' else None
            cells.append(min_median(results, row, impl) if impl else '—')
        for p in peers:
            r = ratio(results, row, p) if row.metric not in FLOORS + ('idle_wakeups',) else None
            cells.append('—' if r is None else '%.2f' % r)
        cells += status(results, row)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def ours_rows(results):
    return [r for r in ROWS if OURS in results.get(r.case, {})]


def ours_status(results, row):
    r = ratio(results, row, 'gevent', impl=OURS)
    return '' if r is None else 'met' if r < OURS_TARGET else 'missed'


def ours_table(results):
    """gevent's own hub on our loop against gevent on its two loops."""
    peers = ('gevent', 'gevent-libuv')
    head = (['case', NAMES[OURS]] + [NAMES[p] for p in peers] +
            ['÷ %s' % NAMES[p] for p in peers] + ['target (÷ libev)', 'status'])
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in ours_rows(results):
        cells = [row.label]
        cells += [min_median(results, row, impl) for impl in (OURS,) + peers]
        for p in peers:
            r = ratio(results, row, p, impl=OURS)
            cells.append('—' if r is None else '%.2f' % r)
        cells += ['< %g' % OURS_TARGET, ours_status(results, row)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def ours_summary(results):
    rows = ours_rows(results)
    if not rows:
        return ''
    met = [r.metric for r in rows if ours_status(results, r) == 'met']
    missed = [r.metric for r in rows if ours_status(results, r) == 'missed']
    return 'gevent on gevent_c.core.loop faster than on libev: %s; not faster: %s' % (
        ', '.join(met) or 'none', ', '.join(missed) or 'none')


def summary(results):
    """The targets, one line each."""
    met, missed, na = [], [], []
    for row in ROWS:
        if row.case not in results or (row.target is None and row.metric != 'floor'):
            continue
        s = status(results, row)[1]
        name = 'sleep0 <= 2x floor' if row.metric == 'floor' else row.metric
        (met if s.startswith('met') else missed if s.startswith('missed') else na).append(name)
        if 'behind eventlet' in s and s.startswith('met'):
            missed.append(row.metric + ' (vs eventlet)')
    floors = []
    for metric, floor in (('sleep0', 'floor'), ('spawn_500', 'floor_spawn'),
                          ('spawn_10000', 'floor_spawn'), ('memory', 'floor_memory')):
        rw = row_of(metric)
        g, f = median(results, rw, 'gevent'), median(results, row_of(floor), 'greenlet')
        if g and f:
            floors.append('%s: target %s (%g x gevent libev) vs %s %s' % (
                metric, fmt(rw.target * g, rw.unit), rw.target, floor, fmt(f, rw.unit)))
    behind = [r.metric for r in ROWS if r.case in results and r.metric != 'idle_wakeups'
              and (ratio(results, r, 'eventlet') or 0) >= 1]
    return ('Targets met: %s\nTargets missed: %s\nNot measurable yet (gevent_c n/a): %s\n'
            'Ahead of eventlet on every shared case: %s\n%s\n%s' % (
                ', '.join(met) or 'none', ', '.join(missed) or 'none', ', '.join(na) or 'none',
                'yes' if not behind else 'no (%s)' % ', '.join(behind),
                '\n'.join('Floor check, ' + f for f in floors), ours_summary(results))).rstrip()


def fmt_metric(metric, v):
    """A measured value with its unit, for progress lines: 'sleep0=1.04 µs/op'."""
    row = next((r for r in ROWS if r.metric == metric), None)
    if row is None:
        return '%s=%.4g' % (metric, v)
    return '%s=%s%s' % (metric, fmt(v, row.unit), '/op' if row.unit.endswith('/op') else '')


def _ratio_axis(ax, ys, what):
    """Log y axis for ratios, with a labelled tick at every 1-2-5 step in range."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    lo, hi = min(ys + [1.0]), max(ys + [1.0])
    ax.set_yscale('log')
    ax.set_ylim(lo / 1.6, hi * 1.6)
    steps = [m * 10.0 ** e for e in range(-3, 3) for m in (1, 2, 5)]
    ax.yaxis.set_major_locator(FixedLocator([t for t in steps if lo / 1.6 <= t <= hi * 1.6]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: '%g×' % v))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.grid(axis='y', color='0.85', lw=0.6)
    ax.set_axisbelow(True)
    ax.axhline(1.0, color='black', lw=0.8)
    ax.set_ylabel(what)


def _grouped_ratio_bars(ax, rows, series):
    """series: [(label, fn(row) -> ratio or None)]; returns every plotted ratio."""
    width = 0.8 / max(1, len(series))
    ys_all = []
    for k, (label, fn) in enumerate(series):
        xs, ys = [], []
        for x, row in enumerate(rows):
            r = fn(row)
            if r is not None:
                xs.append(x + (k - (len(series) - 1) / 2) * width)
                ys.append(r)
        ax.bar(xs, ys, width, label=label)
        ys_all += ys
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.label.replace('`', '') for r in rows], rotation=25, ha='right',
                       fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    return ys_all


def chart(results, impls, path):
    """Three panels: time ratios against the peers; memory per greenlet, in bytes; gevent's
    own hub on our loop against gevent on its two loops."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    time_rows = [r for r in ROWS if 'gevent_c' in results.get(r.case, {})
                 and r.unit != 'B' and r.metric not in FLOORS + ('idle_wakeups',)
                 and not r.case.startswith('ts')]     # timers at scale: their own table
    mem_rows = [r for r in ROWS if r.unit == 'B' and r.metric not in FLOORS
                and 'gevent_c' in results.get(r.case, {})]
    ours = ours_rows(results)
    peers = [p for p in PEERS if p in impls]

    fig = plt.figure(figsize=(13, 10.5))
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 2.6], height_ratios=[1.15, 1])
    ax = fig.add_subplot(grid[0, :])
    ys = _grouped_ratio_bars(ax, time_rows, [
        ('gevent_c ÷ ' + NAMES[p], lambda row, p=p: ratio(results, row, p)) for p in peers])
    for x, row in enumerate(time_rows):
        if isinstance(row.target, float):
            ax.plot([x - 0.45, x + 0.45], [row.target] * 2, color='red', lw=1.5,
                    label='target (÷ gevent libev)' if x == 0 else None)
            ys.append(row.target)
        if median(results, row, 'gevent_c') is None:
            ax.text(x, 1.0, 'n/a', ha='center', va='bottom', fontsize=9, color='gray')
    _ratio_axis(ax, ys, 'gevent_c time ÷ peer time\n(median; below 1× is faster)')
    ax.set_title('Time: gevent_c against its peers')
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.005, 1))

    ax = fig.add_subplot(grid[1, 0])
    impl_cols = [i for i in ('gevent_c',) + PEERS if i in impls]
    for k, row in enumerate(mem_rows):
        vals = [(NAMES[i], median(results, row, i)) for i in impl_cols]
        vals = [(n, v) for n, v in vals if v is not None]
        ax.bar(range(len(vals)), [v for _, v in vals],
               color=['C%d' % j for j in range(len(vals))])
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels([n for n, _ in vals], rotation=25, ha='right', fontsize=8)
        floor = median(results, row_of('floor_memory'), 'greenlet') \
            if 'floor_memory' in results else None
        if floor:
            ax.axhline(floor, color='black', ls='--', lw=1,
                       label='raw greenlet (floor): {:,.0f} B'.format(floor))
            ax.legend(fontsize=8, loc='lower right')
        ax.set_title('Memory: ' + row.label)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: '{:,.0f} B'.format(v)))
    ax.set_ylabel('bytes per greenlet (median)')
    ax.grid(axis='y', color='0.85', lw=0.6)
    ax.set_axisbelow(True)

    ax = fig.add_subplot(grid[1, 1])
    if ours:
        ys = _grouped_ratio_bars(ax, ours, [
            ('gevent on our loop ÷ ' + NAMES[p],
             lambda row, p=p: ratio(results, row, p, impl=OURS)) for p in ('gevent', 'gevent-libuv')])
        _ratio_axis(ax, ys, "gevent's time on our loop ÷\nits time on its own loop")
        ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.005, 1))
    else:
        ax.text(0.5, 0.5, 'not measured in this run', ha='center', transform=ax.transAxes)
    ax.set_title('gevent on gevent_c.core.loop')
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)


def results_from_doc(path):
    """The medians (and minima) of the tables in a generated performance.md, as results:
    lets the chart be redrawn without measuring again (``report.py --redraw``)."""
    scale = {'ns': 1, 'µs': 1e3, 'ms': 1e6, 's': 1e9, 'B': 1}

    def value(text):
        num, _, unit = text.strip().partition(' ')
        return float(num.replace(',', '')) * scale.get(unit, 1)

    by_label = {r.label: r for r in ROWS}
    by_name = {v: k for k, v in NAMES.items()}
    results, head = {}, None
    for line in Path(path).read_text().splitlines():
        if line.startswith('|---'):
            continue
        if not line.startswith('| '):
            head = None
            continue
        cells = [c.strip() for c in line.strip('|').split('|')]
        if cells[0] == 'case':
            head = cells
            continue
        row = by_label.get(cells[0])
        if head is None or row is None:
            continue
        for name, cell in zip(head[1:], cells[1:]):
            impl = by_name.get(name)
            if impl is None or ' / ' not in cell:
                continue
            if row.metric in FLOORS:
                impl = 'greenlet'
            lo, med = (value(c) for c in cell.split(' / '))
            results.setdefault(row.case, {}).setdefault(impl, {'values': {}})[
                'values'][row.metric] = [lo, med, med]
    return results


def write_doc(results, impls, info, docs, sections=''):
    chart(results, impls, docs / 'performance.png')
    nas = ['- %s: %s' % (name, r['gevent_c']['na']) for name, r in results.items()
           if 'na' in r.get('gevent_c', {})]
    notes = (Path(__file__).parent / 'notes.md').read_text()
    text = f"""# Performance

Generated by `make bench` (`python3 bench/run.py`) on {time.strftime('%Y-%m-%d')}; do not edit by
hand: explanations go in `bench/notes.md`, which is copied in below.

- Machine: {info['machine']}
- Python {info['python']}, greenlet {info['greenlet']}, gevent {info['gevent']} (its default
  loop, libev, and `GEVENT_LOOP=libuv`), eventlet {info['eventlet']}
- Implementation cells are min / median over {info['repeat']} fresh processes, interleaved
  across implementations. Times are per operation unless the case says otherwise. The `÷`
  columns are gevent_c's median over the peer's median, so lower is better. Targets are against
  gevent's default loop. "—" means the peer has no equivalent, and
  "n/a" means gevent_c does not have the feature yet.
- A full run took {info['elapsed'] / 60:.1f} minutes. 1-minute load average: {info['load']}.
  On a loaded machine the medians drift up while the minima hold, so compare the minima too.

{table(results, impls)}

```
{summary(results)}
```

![gevent_c time over peer time]({'performance.png'})

## gevent on our loop

gevent's own hub, unchanged, with `GEVENT_LOOP=gevent_c.core.loop`, against gevent
on its default loop (libev) and on its CFFI libuv loop, in the same run. The cases use only
gevent's public API: `gevent.sleep`, `gevent.spawn_raw`/`gevent.spawn` + `joinall`,
`gevent.socket`, and `get_hub().loop.io` + `get_hub().wait`. Target: faster than libev.

{ours_table(results)}

{sections}"""
    if nas:
        text += 'gevent_c cases that are n/a (the feature has not landed):\n\n' + \
            '\n'.join(nas) + '\n\n'
    text += notes
    (docs / 'performance.md').write_text(text)


def main():
    import argparse
    import json
    ap = argparse.ArgumentParser(description='Redraw docs/performance.png (and, from a results '
                                 'file, docs/performance.md) without measuring again; run it '
                                 "with .bench-venv's python (matplotlib).")
    ap.add_argument('--redraw', action='store_true',
                    help="the chart from the tables in docs/performance.md (needs matplotlib)")
    ap.add_argument('results', nargs='?', help="a run's results file (build/bench/results.json)")
    args = ap.parse_args()
    docs = Path(__file__).resolve().parent.parent / 'docs'
    if args.results:
        saved = json.loads(Path(args.results).read_text())
        write_doc(saved['results'], saved['impls'], saved['info'], docs)
        print('wrote docs/performance.md and docs/performance.png from %s' % args.results)
    elif args.redraw:
        from cases import ALL
        chart(results_from_doc(docs / 'performance.md'), list(ALL), docs / 'performance.png')
        print('wrote docs/performance.png from the tables in docs/performance.md')
    else:
        ap.error('give a results file or --redraw')


if __name__ == '__main__':
    main()


def callgrind_table(rows, impls):
    impls = [i for i in impls if i != 'greenlet']
    lines = ['| case | ' + ' | '.join('%s instr/op' % NAMES[i] for i in impls) +
             (' | gevent_c ÷ gevent |' if {'gevent_c', 'gevent'} <= set(impls) else ' |'),
             '|' + '---|' * (len(impls) + 1 + ({'gevent_c', 'gevent'} <= set(impls)))]
    for name, r in rows.items():
        if name in FLOORS:
            r = {'gevent_c': r.get('greenlet')}
        cells = [name] + [('{:,.0f}'.format(r[i]) if isinstance(r.get(i), float)
                           else str(r.get(i, '—'))) for i in impls]
        if {'gevent_c', 'gevent'} <= set(impls):
            a, b = r.get('gevent_c'), r.get('gevent')
            cells.append('%.2f' % (a / b) if isinstance(a, float) and isinstance(b, float)
                         and b else '—')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n(floors: greenlet only, no hub, shown in the gevent_c column)'
