# Sipang: `make run` sets up and serves the demo county; `make test` sets up and runs every test;
# `make test-fast` runs the tests that need no browser, no chain and no long run (about two minutes on 2 cores).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := tools
ANVIL := $(TOOLS)/node_modules/.bin/anvil
NODE_DEPS := node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 5000

# Python keeps its compiled bytecode (pytest's rewritten test modules too) in .venv/pycache,
# even where the environment says not to write it: a run does not compile everything again,
# and the checkout gets no __pycache__ folders.
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast setup system-packages bench-tools bench-api lint format clean

run: setup
	$(BIN)/sipang demo > /dev/null
	$(BIN)/sipang serve --host $(HOST) --port $(PORT)

# pytest-xdist runs the tests in JOBS worker processes (one per core; `JOBS=1` for one
# process); each test file runs whole on one worker, so its session snapshots and module
# fixtures are built once.
JOBS ?= auto
PYTEST := $(BIN)/pytest -n $(JOBS) --dist loadfile

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	node --test pwa/tests/
	$(PYTEST)

# Markers (pyproject.toml; tests/conftest.py marks browser and chain tests by what they use).
test-fast: setup
	$(PYTEST) -m "not browser and not chain and not slow"

setup: $(VENV)/.installed $(ANVIL) $(NODE_DEPS) system-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Not `npm ci`: the registry serves only the linux-amd64 build among anvil's optional
# per-platform packages, so the lock cannot list the others and `npm ci` refuses it.
$(ANVIL): $(TOOLS)/package.json $(TOOLS)/package-lock.json
	npm install --prefix $(TOOLS) --no-audit --no-fund
	touch $@

# The PWA's npm packages (jsQR for phones without BarcodeDetector; fake-indexeddb for tests).
$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Tools only the benchmarks run (Lighthouse for bench/pwa.py); not needed by run or test.
BENCH_TOOLS := bench/node_modules/.installed
bench-tools: setup $(BENCH_TOOLS)

$(BENCH_TOOLS): bench/package.json bench/package-lock.json
	npm ci --prefix bench --no-audit --no-fund
	touch $@

# The read routes through nginx and two gunicorn processes sharing Redis, as a county serves
# them (bench/api.py; `make bench-api ARGS=--quick` for a smoke run).
bench-api: setup
	$(BIN)/python bench/api.py --workers 2 $(ARGS)

# Debian's Chromium (browser tests), a CJK font (Chinese in PDFs and certificates), nginx and
# redis-server (tests of the production path start their own on a free port).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

lint: setup
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS)/node_modules node_modules bench/node_modules .pytest_cache .ruff_cache
