# triage-bot: `make run` serves on 127.0.0.1:8080 in sandbox mode; `make test` runs the whole suite.
# Both set up everything they need on a fresh machine: `run` installs only what running needs, `test` adds the
# dev tools. The versions are the locked ones (requirements/run.txt, requirements/dev.txt, made from pyproject.toml
# by `make lock`), installed by uv, itself installed from PyPI into the venv by pip.

PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
UV_VERSION := 0.13.9
UV         := $(BIN)/uv
UV_STAMP   := $(VENV)/.uv-$(UV_VERSION)
RUN_STAMP  := $(VENV)/.run-stamp
DEV_STAMP  := $(VENV)/.dev-stamp
INSTALL    := $(UV) pip install --quiet --python $(BIN)/python
COMPILE    := $(UV) pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
              --custom-compile-command "make lock"

.PHONY: run test test-faults lint unit bench setup setup-run services lock lock-upgrade clean

setup: $(DEV_STAMP)

setup-run: $(RUN_STAMP)

$(UV_STAMP):
	@test -x $(BIN)/python || { echo "[setup] creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@touch $@

$(RUN_STAMP): requirements/run.txt pyproject.toml | $(UV_STAMP)
	@echo "[setup] installing triage-bot and what it needs to run (requirements/run.txt)"
	@$(INSTALL) --require-hashes -r requirements/run.txt
	@$(INSTALL) --no-deps -e .
	@touch $@

$(DEV_STAMP): requirements/dev.txt $(RUN_STAMP)
	@echo "[setup] installing the dev tools (requirements/dev.txt)"
	@$(INSTALL) --require-hashes -r requirements/dev.txt
	@touch $@

# The lock files, from pyproject.toml's dependency lists (the source of truth). Versions already locked stay as they
# are unless pyproject.toml no longer admits them; `make lock-upgrade` takes the newest of everything.
lock: $(UV_STAMP)
	$(COMPILE) $(LOCK_FLAGS) -o requirements/run.txt
	$(COMPILE) $(LOCK_FLAGS) --extra dev --constraint requirements/run.txt -o requirements/dev.txt

lock-upgrade:
	@$(MAKE) --no-print-directory lock LOCK_FLAGS=--upgrade

run: setup-run
	$(BIN)/triage-bot serve

services:
	@tests/services.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

test: setup services lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The whole fault suite (tests/faults; README "Reliability"), one scenario at a time (-n 0 when xdist is there):
# 36 tests in under 5 minutes. `make test` runs its cheap part.
test-faults: setup services
	TRIAGE_FAULTS=1 $(BIN)/python -m pytest tests/faults -p no:cacheprovider \
		$$($(BIN)/python -c "import xdist" 2>/dev/null && echo "-n 0")

unit: setup
	$(BIN)/python -m pytest tests/workflows

bench: setup services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info tests/deploy/node_modules
