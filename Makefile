# berth: the two commands that matter are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast conformance lint typecheck check venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev,bench]'
	touch $(STAMP)

venv: $(STAMP)

## run: set up, migrate the embedded SQLite database, serve on 127.0.0.1:8780
run: $(STAMP)
	$(VENV)/bin/berth serve

## test: set up and run the whole suite (unit, storage on 3 databases, HTTP conformance, concurrency)
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

## test-fast: SQLite only, no conformance
test-fast: $(STAMP)
	BERTH_TEST_BACKENDS=sqlite $(PY) -m pytest -q -m "not slow"

## conformance: upstream gabbi files against a fresh server (ARGS=--only 'traits*')
conformance: $(STAMP)
	scripts/conformance $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check berth tests
	$(VENV)/bin/ruff format --check berth

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
