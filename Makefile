# Two commands do all the set-up: `make run` (the scripted editor session on the bundled
# model) and `make test` (lint, type-check, every test). Both create .venv and install
# the project first; installing is skipped when pyproject.toml has not changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# llama-cpp-python builds from source (~6 min on 2 cores) the first time; pip keeps the
# built wheel in its cache, so later installs (and CI on the same machine) take seconds.
$(STAMP): pyproject.toml | $(PY)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m lsp_server demo

lint: install
	$(VENV)/bin/ruff check lsp_server tests bench
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

bench: install
	$(PY) -m bench.engine --json bench/results/engine.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
