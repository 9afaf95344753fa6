# triage-bot: `make run` serves on 127.0.0.1:8080 in sandbox mode; `make test` runs the whole suite.
# Both set up everything they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-faults lint typecheck unit bench setup services docker-lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@echo "[setup] creating $(VENV) and installing triage-bot with its dev tools"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: setup
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
	$(BIN)/python -m pytest

# The whole fault suite (tests/faults; README "Reliability"), one scenario at a time (-n 0 when xdist is there):
# about 15 minutes. `make test` runs its cheap part.
test-faults: setup services
	TRIAGE_FAULTS=1 $(BIN)/python -m pytest tests/faults -p no:cacheprovider \
		$$($(BIN)/python -c "import xdist" 2>/dev/null && echo "-n 0")

unit: setup
	$(BIN)/python -m pytest tests/workflows

bench: setup services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
