# The two commands: `make run` serves the API on the embedded default; `make test` runs the
# suite against Postgres and Redis. Both install into .venv first: `run` only what the service
# needs, `test` the test and lint tools too, and the npm packages of the TypeScript client test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TYPESCRIPT := clients/typescript

.PHONY: run test lint format install openapi

run: $(VENV)/.installed
	$(BIN)/darkroom serve

test: $(VENV)/.installed-dev $(TYPESCRIPT)/node_modules/.installed
	$(BIN)/pytest

openapi: $(VENV)/.installed
	$(BIN)/darkroom openapi --output openapi/openapi.json

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The self-hosted models' tests run a tiny pipeline on the CPU: torch's CPU build is installed
# before the `diffusers` extra, whose `torch` would otherwise take a GPU build of several GB.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,diffusers]'
	touch $@

# Only the tests need Node: the generator and compiler of the TypeScript client, pinned by the
# lock file (pure JavaScript packages, no install scripts).
$(TYPESCRIPT)/node_modules/.installed: $(TYPESCRIPT)/package-lock.json
	cd $(TYPESCRIPT) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@
