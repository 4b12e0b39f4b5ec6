# gevent_c developer / CI entry points (GNU make).
PYTHON ?= python3
# dnsmasq-base: the dnsmasq binary only (no system service), for the resolver tests.
DEB_PACKAGES := libuv1-dev libc-ares-dev pkg-config gcc dnsmasq-base

.DEFAULT_GOAL := test
.PHONY: deps install test bench build clean

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
