"""pytest plugin (``-p _pytest_outcomes``): write each test's outcome and
duration as JSON to the file named by $PEER_COMPAT_OUTCOMES, for
compat/run_peer_suites.py.  Keys are pytest node ids; outcomes are
'passed', 'failed' (in any phase: setup, call or teardown) or 'skipped'
(xfail counts as skipped)."""
import json
import os

_RANK = {'passed': 0, 'skipped': 1, 'failed': 2}
_results = {}


def pytest_runtest_logreport(report):
    if report.failed:
        outcome = 'failed'
    elif report.skipped or hasattr(report, 'wasxfail'):
        outcome = 'skipped'
    elif report.when == 'call':
        outcome = 'passed'
    else:
        return   # a passing setup or teardown says nothing on its own
    old = _results.get(report.nodeid)
    dur = (old or {}).get('duration', 0.0) + report.duration
    if old is None or _RANK[outcome] > _RANK[old['outcome']]:
        _results[report.nodeid] = {'outcome': outcome, 'duration': dur}
    else:
        old['duration'] = dur


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get('PEER_COMPAT_OUTCOMES')
    if path:
        with open(path, 'w') as f:
            json.dump(_results, f, indent=0, sort_keys=True)
