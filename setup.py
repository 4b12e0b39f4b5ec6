"""Build gevent_c._hub (src/*.c but src/ares.c, each its own translation unit,
linked with link-time optimisation where the compiler has it) against libuv and
greenlet, and gevent_c._ares (src/ares.c, its own module) against c-ares when
pkg-config finds it.

Environment: GEVENT_C_CFLAGS / GEVENT_C_LDFLAGS are added to the compiler's and
the linker's flags; GEVENT_C_WERROR=1 (CI) adds -Wextra -Wno-unused-parameter -Wmissing-prototypes
-Werror; GEVENT_C_LTO=0 turns link-time optimisation off.

The build directory is keyed by the configuration (interpreter, flags, whether
c-ares was found), so a build made under another configuration is never reused:
build/<key>/.  An in-place build without c-ares removes a stale in-place _ares."""
import glob
import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def die(msg):
    sys.stderr.write('gevent_c: %s\n' % msg)
    sys.exit(1)


def pkg_config(package):
    """Compiler/linker flags for package, or None if pkg-config cannot find it."""
    try:
        subprocess.run(['pkg-config', '--exists', package], check=True)
        out = subprocess.run(['pkg-config', '--cflags', '--libs', package], check=True,
                             stdout=subprocess.PIPE, universal_newlines=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    flags = {'include_dirs': [], 'library_dirs': [], 'libraries': [],
             'extra_compile_args': [], 'extra_link_args': []}
    for tok in shlex.split(out):
        key = {'-I': 'include_dirs', '-L': 'library_dirs', '-l': 'libraries'}.get(tok[:2])
        if key:
            flags[key].append(tok[2:])
        else:
            flags['extra_link_args' if tok.startswith('-Wl,') else 'extra_compile_args'].append(tok)
    return flags


def libuv_flags():
    flags = pkg_config('libuv')
    if flags is None:
        die('libuv not found (pkg-config libuv failed): install Debian\'s libuv1-dev '
            '(apt-get install libuv1-dev pkg-config)')
    return flags


def compiler_accepts(flag):
    """Whether the C compiler compiles and links a tiny file with flag."""
    import tempfile
    cc = shlex.split(os.environ.get('CC') or sysconfig.get_config_var('CC') or 'cc')
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, 't.c')
        with open(src, 'w') as f:
            f.write('int f(void); int f(void) { return 0; }\n')
        try:
            return subprocess.run(cc + [flag, '-shared', '-fPIC', src, '-o', os.path.join(d, 't.so')],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        except OSError:
            return False


# Link-time optimisation keeps the hot paths inlined across src/'s files.
LTO = (['-flto=auto'] if os.environ.get('GEVENT_C_LTO', '1') != '0'
       and compiler_accepts('-flto=auto') else [])


def add_common_flags(flags):
    flags['extra_compile_args'] += ['-std=gnu11', '-Wall', '-fvisibility=hidden']
    if os.environ.get('GEVENT_C_WERROR', '') not in ('', '0'):
        flags['extra_compile_args'] += ['-Wextra', '-Wno-unused-parameter', '-Wmissing-prototypes',
                                        '-Werror']
    flags['extra_compile_args'] += ['-Wno-missing-field-initializers'] + LTO
    flags['extra_link_args'] += LTO
    flags['extra_compile_args'] += shlex.split(os.environ.get('GEVENT_C_CFLAGS', ''))
    flags['extra_link_args'] += shlex.split(os.environ.get('GEVENT_C_LDFLAGS', ''))
    return flags


def greenlet_include():
    candidates = []
    try:
        import greenlet
        candidates.append(os.path.dirname(greenlet.__file__))
    except ImportError:
        pass
    pyver = 'python%d.%d' % sys.version_info[:2]
    for key in ('include', 'platinclude'):
        candidates.append(os.path.join(sysconfig.get_paths()[key], 'greenlet'))
    for prefix in (sys.prefix, sys.base_prefix):
        candidates.append(os.path.join(prefix, 'include', 'site', pyver, 'greenlet'))
    for d in candidates:
        if os.path.isfile(os.path.join(d, 'greenlet.h')):
            return d
    die('greenlet.h not found (looked in %s): pip install "greenlet>=3"' % ', '.join(candidates))


flags = libuv_flags()
flags['include_dirs'] += [greenlet_include(), 'src']
add_common_flags(flags)
ARES_SOURCES = ['src/ares.c']
HUB_SOURCES = sorted(set(glob.glob('src/*.c')) - set(ARES_SOURCES))

ext_modules = [Extension(
    'gevent_c._hub',
    sources=HUB_SOURCES,
    depends=sorted(glob.glob('src/*.h')),
    **flags)]

# gevent_c._ares (the c-ares resolver's channel) is optional: without c-ares
# the module is missing and gevent_c.resolver_ares raises ImportError.
ares_flags = pkg_config('libcares')
if ares_flags is None:
    sys.stderr.write('gevent_c: warning: c-ares not found (pkg-config libcares failed; '
                     'Debian: libc-ares-dev): building without gevent_c._ares\n')
else:
    ext_modules.append(Extension('gevent_c._ares', sources=ARES_SOURCES,
                                 depends=['src/compat.h'], **add_common_flags(ares_flags)))


def config_key():
    """A short name for this build configuration: the interpreter's ABI, the
    extensions and their flags, and the greenlet.h they compile against."""
    inc = greenlet_include()
    with open(os.path.join(inc, 'greenlet.h'), 'rb') as f:
        greenlet_h = hashlib.sha1(f.read()).hexdigest()
    conf = repr((sysconfig.get_config_var('EXT_SUFFIX'), greenlet_h,
                 [(e.name, [d for d in e.include_dirs if d != inc], e.library_dirs, e.libraries,
                   e.extra_compile_args, e.extra_link_args) for e in ext_modules]))
    return '%s-%s' % (sys.implementation.cache_tag, hashlib.sha1(conf.encode()).hexdigest()[:10])


class BuildExt(build_ext):
    def run(self):
        super().run()
        if self.inplace and not any(e.name == 'gevent_c._ares' for e in self.extensions):
            # A _ares built in place when c-ares was there would still import.
            stale = os.path.join('gevent_c', '_ares' + sysconfig.get_config_var('EXT_SUFFIX'))
            if os.path.exists(stale):
                sys.stderr.write('gevent_c: removing %s (built with c-ares)\n' % stale)
                os.unlink(stale)


setup(ext_modules=ext_modules, cmdclass={'build_ext': BuildExt},
      options={'build': {'build_base': os.path.join('build', config_key())}})
