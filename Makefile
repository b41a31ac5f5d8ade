# The two set-up commands: `make run` and `make test`. Both work on a fresh clone with Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c 'import hashlib,sys;print(hashlib.sha1(open("pyproject.toml","rb").read()).hexdigest()[:12])')

.PHONY: run test lint docs schema clean bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Legetime needs Python >= 3.11 (found %s)" % sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## Run the platform on the embedded default: SQLite + in-process jobs, GraphiQL at http://127.0.0.1:8000/graphql
run: $(STAMP)
	$(BIN)/legetime migrate
	$(BIN)/legetime demo
	$(BIN)/legetime serve

## Run the whole test suite (PostgreSQL/Redis tests skip with a reason when those are absent, unless CI=true)
test: $(STAMP)
	$(BIN)/python -m pytest

## The performance benchmark (issue 12; docs/performance.md): starts PostgreSQL-backed servers, a baseline and wrk,
## prints ratios measured in the same run. Needs PostgreSQL, Redis and wrk. Never part of `make test`.
## A subset or longer runs: make bench BENCH_ARGS="caselist --duration 20"
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## Regenerate what the docs take from the code: the settings reference in docs/providers.md, schema/schema.graphql
## and the README walkthrough's operations (from legetime.schema.playground_examples, the playground's examples)
docs: $(STAMP)
	$(BIN)/python -m tools.docs

schema: $(STAMP)
	$(BIN)/python -m tools.docs schema

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
