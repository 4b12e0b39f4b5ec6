"""The documented examples run: Waiter's docstrings and the echo server
page (docs/echo.md, also collected by pytest's --doctest-glob)."""
import doctest
import os

import gevent_c.hub as H

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs')


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


def test_echo_server_page_runs():
    # the page must stay a doctest (pycon blocks): a page turned into plain
    # ```python blocks would silently stop being run by --doctest-glob
    path = os.path.join(DOCS, 'echo.md')
    if not os.path.exists(path):   # an installed package tested without docs/
        import pytest
        pytest.skip('docs/echo.md not present')
    failed, attempted = doctest.testfile(path, module_relative=False, verbose=False,
                                         optionflags=doctest.ELLIPSIS)
    assert attempted >= 15, attempted
    assert failed == 0
