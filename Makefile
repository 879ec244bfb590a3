# The README's two commands: `make demo` (the main job on the sandbox) and `make test`.
# Each creates the virtual environment in .venv on first use and reinstalls when
# pyproject.toml changes.
PYTHON ?= python3
# Prefect keeps its state (the temporary server's database) in the checkout, never in ~/.prefect;
# no analytics: the machine may have no network
export PREFECT_HOME := $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# the demo's temporary Prefect server may take longer than Prefect's 20 s to start on a busy
# 2-core machine; past this the demo fails with Prefect's "Timed out ... ephemeral" message
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install demo test lint format

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing AirCast and its test tools into $(VENV) (first run: a few minutes)"
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	@# torch first, pinned: this machine has a local CPU wheel of 2.13.0; resolved later as a
	@# dependency it could come as the registry's CUDA build (several GB)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(BIN)/python -m flows.demo

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The Prefect-UI test drives Debian's Chromium headless: installed on first use (CI runs as root;
# elsewhere through sudo)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	@echo "installing Debian's chromium for the browser test (once)"
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

# The infra test starts a PostgreSQL server of Debian's packages (its binaries only: the test
# makes and removes its own cluster); installed on first use if the machine lacks them
.PHONY: postgres-server
postgres-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
		echo "installing Debian's postgresql for the infra test (once)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install \
			-y -qq --no-install-recommends postgresql; }

test: $(STAMP) lint $(CHROMIUM) postgres-server
	$(BIN)/python -m pytest

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
