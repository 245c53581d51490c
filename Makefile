# `make run` and `make test` work on a fresh Linux machine with Python 3.11+:
# they create .venv, install the locked dependencies, and start project-local
# PostgreSQL and Redis servers unless DATABASE_URL / REDIS_URL are set.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock 2>/dev/null | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
# The first Python 3.11 or newer on PATH (a pyenv shim that cannot run is skipped).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)

.PHONY: help install run test lint format bench bench-quick lock clean

help:
	@echo "make run          serve the portal and admin at http://$(HOST):$(PORT) with worker and beat"
	@echo "make test         run the whole test suite"
	@echo "make lint         ruff lint and format check"
	@echo "make format       ruff format and autofix"
	@echo "make bench        run the benchmarks (bench-quick: small data)"
	@echo "make lock         re-resolve requirements.lock from pyproject.toml"
	@echo "make clean        remove .venv and the local servers' data (.local/)"

$(STAMP):
	@if [ -z "$(PYTHON)" ]; then echo "billing_site: Python 3.11 or newer is required; install it and re-run make" >&2; exit 1; fi
	@echo "==> Installing dependencies into $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "billing_site: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2; exit 1; }
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	@$(BIN)/python -m pip check
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/python -m billing_site.devtools run --host $(HOST) --port $(PORT)

test: $(STAMP)
	@$(BIN)/python -m billing_site.devtools test $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	@$(BIN)/python -m bench

bench-quick: $(STAMP)
	@$(BIN)/python -m bench --quick

# Resolve the newest versions pyproject.toml allows in a scratch venv and pin
# them: requirements.lock (runtime, for the production image) and
# requirements-dev.lock (runtime + local servers + dev tools, for make).
LOCK_VENV := .local/lock-venv
LOCK_HEADER = "\# Exact versions; regenerate with 'make lock' (see pyproject.toml)."
lock:
	@if [ -z "$(PYTHON)" ]; then echo "billing_site: Python 3.11 or newer is required" >&2; exit 1; fi
	@rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	@$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools
	@$(LOCK_VENV)/bin/python -m pip install --quiet .
	@{ echo $(LOCK_HEADER); $(LOCK_VENV)/bin/python -m pip freeze --all --exclude billing-site --exclude pip; } > requirements.lock
	@$(LOCK_VENV)/bin/python -m pip install --quiet '.[local,dev]'
	@{ echo $(LOCK_HEADER); $(LOCK_VENV)/bin/python -m pip freeze --all --exclude billing-site --exclude pip; } > requirements-dev.lock
	@rm -rf $(LOCK_VENV) build *.egg-info
	@echo "==> requirements.lock and requirements-dev.lock updated"

clean:
	rm -rf $(VENV) .local
