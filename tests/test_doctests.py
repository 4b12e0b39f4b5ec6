"""The examples in Waiter's docstrings must run (§5: both documented examples)."""
import doctest

import gevent_c.hub as H


def test_waiter_doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    globs = dict(vars(H))
    globs['H'] = H
    tests = finder.find(H.Waiter, 'Waiter', module=False, globs=globs)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0, 'no doctest examples found in Waiter docstrings'
    assert results.failed == 0, results
