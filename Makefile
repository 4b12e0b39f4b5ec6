# gevent_c developer / CI entry points (GNU make).
PYTHON ?= python3
# dnsmasq-base: the dnsmasq binary only (no system service), for the resolver tests.
DEB_PACKAGES := libuv1-dev libc-ares-dev pkg-config gcc dnsmasq-base

.DEFAULT_GOAL := test
.PHONY: deps install test bench build clean compat-venv gevent-compat gevent-compat-subset peers-compat-subset test-asan test-valgrind test-fuzz

# Install missing Debian build dependencies (apt-get needs root).
deps:
	@missing=""; \
	if ! command -v dpkg >/dev/null 2>&1; then \
		echo "make deps: dpkg not found (not Debian?); make sure these are installed: $(DEB_PACKAGES)" >&2; \
		exit 0; \
	fi; \
	for p in $(DEB_PACKAGES); do \
		dpkg -s "$$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "make deps: installing$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y$$missing; \
	else \
		echo "make deps: missing Debian packages:$$missing" >&2; \
		echo "make deps: run: sudo apt-get update && sudo apt-get install -y$$missing" >&2; \
		exit 1; \
	fi

# Editable install: the extension is built in place into gevent_c/.
install: deps
	$(PYTHON) -m pip install -e '.[test]'

test: install
	$(PYTHON) -X dev -m pytest -q
	@if [ -f bench/run.py ]; then \
		echo "$(PYTHON) bench/run.py --quick"; $(PYTHON) bench/run.py --quick; \
	fi

bench: install
	@if [ -f bench/run.py ]; then \
		echo "$(PYTHON) bench/run.py"; $(PYTHON) bench/run.py; \
	else \
		echo "make bench: bench/run.py not written yet (see issue 6)" >&2; exit 1; \
	fi

build:
	$(PYTHON) setup.py build_ext --inplace

clean:
	rm -rf build *.egg-info gevent_c/*.so

# gevent's own test suite on our loop and on gevent's CFFI libuv loop ->
# docs/compat.md (issue 8).  The venv holds the latest gevent and its test
# extras; gevent_c comes from this checkout (PYTHONPATH, built in place).
# Outside the checkout (see compat/run_gevent_tests.py, CACHE).
COMPAT_VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/gevent_c/compat-venv
compat-venv:
	@if [ ! -x $(COMPAT_VENV)/bin/python ]; then \
		$(PYTHON) -m venv $(COMPAT_VENV) && \
		$(COMPAT_VENV)/bin/python -m pip install -q -U pip && \
		$(COMPAT_VENV)/bin/python -m pip install -q 'gevent[test]'; \
	fi

gevent-compat: build compat-venv
	$(PYTHON) compat/run_gevent_tests.py --venv $(COMPAT_VENV)
	$(PYTHON) compat/run_peer_suites.py --venv $(COMPAT_VENV)

# CI's fast subset (core, hub, sleep, timeout, socket files) on our loop;
# fails when a file outside the documented known failures fails.
gevent-compat-subset: build compat-venv
	$(PYTHON) compat/run_gevent_tests.py --venv $(COMPAT_VENV) --subset --no-write
	$(PYTHON) compat/run_peer_suites.py --venv $(COMPAT_VENV) --subset

# Part of each peer's suite (geventhttpclient, gunicorn's gevent worker,
# zmq.green) on libev and ours; fails when a test passing on libev fails on ours.
peers-compat-subset: build compat-venv
	$(PYTHON) compat/run_peer_suites.py --venv $(COMPAT_VENV) --subset

# ---- reliability (issue 7; docs/reliability.md) ----
# The whole suite against an -fsanitize=address,undefined build made in a
# scratch copy (build/asan-tree); the in-place build is left as it is.
test-asan: deps
	tests/reliability/asan.sh -q

# valgrind memcheck of a representative workload: no definite leak and no
# memory error in gevent_c.  VALGRIND_N: iterations per operation.
VALGRIND_N ?= 200
test-valgrind: install
	tests/reliability/valgrind.sh $(VALGRIND_N)

# More API fuzzing than the 10,000-operation run in the normal suite
# (tests/test_fuzz_api.py): FUZZ_SEEDS, each FUZZ_OPS operations, each in its
# own process.  A long local run: make test-fuzz FUZZ_SEEDS=1-200 FUZZ_OPS=20000
FUZZ_SEEDS ?= 1-3
FUZZ_OPS ?= 10000
test-fuzz: install
	$(PYTHON) tests/reliability/fuzz_api.py --seeds $(FUZZ_SEEDS) --ops $(FUZZ_OPS)
