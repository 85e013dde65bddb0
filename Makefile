# Two commands on a fresh Debian machine:
#   make demo   set up everything, then run the live local demo
#   make test   set up everything, then run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test setup model redis chromium prometheus clean

demo: setup model
	$(BIN)/babelwatch demo

test: setup model
	$(BIN)/python -m pytest -q -p no:cacheprovider

setup: redis chromium prometheus $(STAMP)

# Redis: tests and the demo use the one on 127.0.0.1:6379 when it answers, else start their own
# redis-server from PATH; only the binary has to exist.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

# Chromium + chromedriver: the dashboard's browser tests (tests/babelwatch/dashboard) drive Debian's
chromium:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  echo "installing chromium + chromium-driver"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }

# Prometheus (promtool), Alertmanager (amtool) and the Redis exporter: the observability tests
# (tests/drills/test_observability.py) run the real ones
prometheus:
	@command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 && command -v prometheus-redis-exporter >/dev/null 2>&1 || { \
	  echo "installing prometheus, prometheus-alertmanager, prometheus-redis-exporter"; $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager prometheus-redis-exporter; }

# torch first and pinned: a bare or open-range torch pulls a multi-GB CUDA build
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

model: $(STAMP)
	$(BIN)/babelwatch model build

clean:
	rm -rf .run .pytest_cache build *.egg-info
