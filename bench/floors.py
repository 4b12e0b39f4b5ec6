"""Builds bench/floor.c into the extension module `_bench_floor` (the C floors of the hub cases).

Compiled on first use, with the C compiler Python was built with, against this interpreter's
headers, its greenlet's greenlet.h and libuv (pkg-config), into build/bench/ outside version
control; one build per interpreter prefix, rebuilt when floor.c changes.
"""
import hashlib
import importlib.util
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / 'floor.c'
BUILD = HERE.parent / 'build' / 'bench'


def _flags():
    import greenlet
    out = subprocess.run(['pkg-config', '--cflags', '--libs', 'libuv'], check=True,
                         capture_output=True, text=True).stdout
    inc = [sysconfig.get_paths()['include'], os.path.dirname(greenlet.__file__)]
    return ['-I' + d for d in inc] + shlex.split(out)


def load():
    """Import _bench_floor, compiling it first if needed."""
    tag = hashlib.sha1(sys.prefix.encode()).hexdigest()[:10]
    d = BUILD / ('floor-' + tag)
    so = d / ('_bench_floor' + sysconfig.get_config_var('EXT_SUFFIX'))
    if not so.exists() or so.stat().st_mtime < SRC.stat().st_mtime:
        d.mkdir(parents=True, exist_ok=True)
        tmp = so.with_name('%s.%d.tmp' % (so.name, os.getpid()))
        cc = shlex.split(os.environ.get('CC') or sysconfig.get_config_var('CC') or 'cc')
        cmd = cc + ['-O2', '-fPIC', '-shared', '-Wall', '-o', str(tmp), str(SRC)] + _flags()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            raise RuntimeError('building %s failed: %s\n%s' % (SRC.name, ' '.join(cmd),
                                                               p.stderr))
        os.replace(tmp, so)            # atomic: parallel callgrind runs may build at once
    spec = importlib.util.spec_from_file_location('_bench_floor', so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
