"""The Makefile keeps the environment it made: a target run without PYTHON=
uses the interpreter .venv was made from, and PYTHON=... given remakes it
from that one.  Checked with `make -n venv` (a dry run: it prints the
recipe, with the interpreter it would use, and runs nothing) against a
scratch VENV, so the checkout's own .venv is never touched.
"""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    shutil.which('make') is None or not os.path.exists(os.path.join(ROOT, 'Makefile')),
    reason='needs GNU make and the checkout (not an installed wheel)')


def _interpreter(tmp_path, *args, env=None):
    """The interpreter `make venv` would make $(VENV) from (or check it
    against), read from its dry run."""
    e = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'MAKEFLAGS', 'MFLAGS')}
    e.update(env or {})
    p = subprocess.run(['make', '-n', '--no-print-directory', '-C', ROOT, 'venv',
                        'VENV=%s' % (tmp_path / 'venv')] + list(args),
                       env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    m = re.search(r'want="\$\((\S+) -c', p.stdout)
    assert m, p.stdout
    return m.group(1)


def _made_from(tmp_path, python):
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / '.python').write_text('%s 3.11.2\n' % (python,))
    return venv


@pytest.fixture
def fake_python(tmp_path):
    # an interpreter path that runs (the venv's record is only trusted then)
    path = tmp_path / 'bin' / 'python3.99'
    path.parent.mkdir()
    path.write_text('#!/bin/sh\nexit 0\n')
    path.chmod(0o755)
    return str(path)


def test_without_python_the_venv_s_own_interpreter(tmp_path, fake_python):
    _made_from(tmp_path, fake_python)
    assert _interpreter(tmp_path) == fake_python


def test_python_given_is_a_choice(tmp_path, fake_python):
    _made_from(tmp_path, fake_python)
    assert _interpreter(tmp_path, 'PYTHON=/usr/bin/python3') == '/usr/bin/python3'
    assert _interpreter(tmp_path, env={'PYTHON': '/usr/bin/python3'}) == '/usr/bin/python3'


def test_no_venv_yet_python3(tmp_path):
    assert _interpreter(tmp_path) == 'python3'


def test_a_recorded_interpreter_that_is_gone_python3(tmp_path):
    _made_from(tmp_path, str(tmp_path / 'no-such-python'))
    assert _interpreter(tmp_path) == 'python3'


def test_other_targets_do_not_remake_the_venv(tmp_path, fake_python):
    # `make -n docs` after an install from fake_python: the venv check runs
    # with fake_python, so it keeps the venv (its record matches)
    venv = _made_from(tmp_path, fake_python)
    (venv / '.installed').write_text('')
    p = subprocess.run(['make', '-n', '--no-print-directory', '-C', ROOT, 'docs',
                        'VENV=%s' % venv], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != 'PYTHON'})
    assert p.returncode == 0, p.stderr
    assert 'want="$(%s -c' % fake_python in p.stdout, p.stdout
    assert 'python3 -m venv' not in p.stdout.replace('%s -m venv' % fake_python, '')
